//! Attacks: tftp (see SECURITY.md).
