//! The product binary carries no test code: no Slack or LLM stand-in, no store
//! contract, no builders, no crash points.
//!
//! It scans the kubemedic binary that `cargo build -p kubemedic` makes with no
//! features (tests/run.sh builds it for the image test and exports
//! KUBEMEDIC_STATIC_BIN; a release build is made the same way by
//! scripts/image.sh) for the names those helpers compile to. The same names are
//! first found in this test's own executable, which links them, so a marker that
//! stopped matching would fail here rather than pass silently.

use std::hint::black_box;
use std::path::Path;

/// Names that appear (in symbols, panic locations or messages) wherever the test helpers are linked.
const MARKERS: &[&str] = &["testkit", "SlackStandin", "StandIn", "ContractError", "simulated crash", "AfterPatch"];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[tokio::test]
async fn the_product_binary_has_no_stand_ins_contract_or_crash_points() {
    // Use every helper, so that this executable links them for the positive control below.
    let slack = testkit::slack::SlackStandin::start("xoxb-t").await.unwrap();
    let llm = testkit::llm::StandIn::start(kubemedic::agent::llm::wire::Api::Openai, vec![]).await.unwrap();
    black_box((slack.base_url(), llm.requests()));
    let dir = tempfile::tempdir().unwrap();
    let store = kubemedic::store::redb::RedbStore::open(dir.path()).unwrap();
    testkit::store::run(&store).await.unwrap();
    black_box(<kubemedic::approvals::Proposal as testkit::Sample>::test());
    let crashed = kubemedic::approvals::ApprovalError::Crashed(testkit::CrashPoint::AfterPatch);
    black_box(format!("{crashed} {crashed:?}"));
    let this = read(&std::env::current_exe().unwrap());
    for m in MARKERS {
        assert!(contains(&this, m), "marker {m:?} not found in the test executable, which links the helpers");
    }

    let bin = std::env::var("KUBEMEDIC_STATIC_BIN")
        .expect("KUBEMEDIC_STATIC_BIN: kubemedic built with `cargo build -p kubemedic` (tests/run.sh builds it)");
    let product = read(Path::new(&bin));
    // Symbols are there to be searched (a stripped binary would pass for the wrong reason).
    assert!(contains(&product, "take_over_abandoned"), "{bin} has no symbols; the check needs a debug build");
    let found: Vec<&str> = MARKERS.iter().copied().filter(|m| contains(&product, m)).collect();
    assert!(found.is_empty(), "test code in the product binary {bin}: {found:?}");
}
