//! Prompt workflows (`prompts/*.md`): Markdown with a front matter of name, description, arguments and steps.
