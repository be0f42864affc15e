//! Attacks: publish (see SECURITY.md).
