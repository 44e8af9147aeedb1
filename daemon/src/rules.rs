//! Rules (`rules/*.yaml`): match signals to prompt workflows.
