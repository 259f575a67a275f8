//! The contract suite (being written).
