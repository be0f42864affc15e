//! Attacks: listen (see SECURITY.md).
