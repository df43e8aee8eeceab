//! The agent loop: one stage as a bounded conversation with the model.
