//! Placeholder: filled in by its recipe's work.
