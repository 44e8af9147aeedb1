"""kubemedic's Slack output and request signing checked against the PyPI slack_sdk.

- Every Block Kit message kubemedic sends (golden file written and compared by the Rust
  unit test approvals::slack::blocks::tests) parses with slack_sdk's models: each block and
  each element, validated against Block Kit's limits, and serialises back unchanged
  (so no field is misspelt or unknown to Slack).
- kubemedic's signature check (approvals::slack::signature, checked over the same vectors by
  its unit test) agrees with slack_sdk's SignatureVerifier on every vector.

Run: ~/.cache/kubemedic/venv/bin/python -m pytest tests/python/test_slack.py
"""

import json
import pathlib
import unittest

from slack_sdk.models.blocks import ActionsBlock, Block, BlockElement, ButtonElement, ConfirmObject
from slack_sdk.signature import Clock, SignatureVerifier

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


class FixedClock(Clock):
    def __init__(self, now: float):
        self._now = now

    def now(self) -> float:
        return self._now


class SignatureAgreement(unittest.TestCase):
    def test_vectors_agree_with_signature_verifier(self):
        vectors = json.loads((FIXTURES / "slack_signatures.json").read_text())
        self.assertGreaterEqual(len(vectors), 8)
        for v in vectors:
            with self.subTest(v["name"]):
                verifier = SignatureVerifier(v["secret"], clock=FixedClock(v["now"]))
                self.assertEqual(
                    verifier.is_valid(v["body"], v["timestamp"], v["signature"]),
                    v["valid"],
                )
                if v["valid"]:
                    self.assertEqual(
                        verifier.generate_signature(timestamp=v["timestamp"], body=v["body"]),
                        v["signature"],
                    )


class BlockKit(unittest.TestCase):
    def setUp(self):
        self.messages = json.loads((FIXTURES / "slack_blocks.json").read_text())

    def test_every_block_and_element_parses_and_round_trips(self):
        self.assertTrue({"pending", "approved", "verified", "failed", "rejected", "reply"} <= set(self.messages))
        for name, blocks in self.messages.items():
            self.assertIsInstance(blocks, list)
            self.assertLessEqual(len(blocks), 50, "a message holds at most 50 blocks")
            for raw in blocks:
                with self.subTest(message=name, block=raw.get("type")):
                    block = Block.parse(raw)
                    self.assertIsNotNone(block)
                    self.assertNotEqual(type(block), Block, "parsed as a generic block: unknown type")
                    block.validate_json()
                    self.assertEqual(block.to_dict(), raw)
                    for el in raw.get("elements", []):
                        if raw["type"] == "actions":
                            element = BlockElement.parse(el)
                            self.assertIsNotNone(element)
                            element.validate_json()
                            self.assertEqual(element.to_dict(), el)

    def test_pending_message_has_approve_with_confirm_and_reject(self):
        actions = [Block.parse(b) for b in self.messages["pending"] if b["type"] == "actions"]
        self.assertEqual(len(actions), 1)
        block = actions[0]
        self.assertIsInstance(block, ActionsBlock)
        approve, reject = block.elements
        self.assertIsInstance(approve, ButtonElement)
        self.assertEqual((approve.action_id, approve.style), ("kubemedic_approve", "primary"))
        self.assertIsInstance(approve.confirm, ConfirmObject)
        approve.confirm.validate_json()
        self.assertEqual((reject.action_id, reject.style), ("kubemedic_reject", "danger"))
        self.assertEqual(approve.value, reject.value)

    def test_decided_messages_have_no_buttons(self):
        for name in ("approved", "verified", "failed", "rejected"):
            self.assertFalse([b for b in self.messages[name] if b["type"] == "actions"], name)


if __name__ == "__main__":
    unittest.main()
