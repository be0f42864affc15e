//! compose-cluster: the cluster as compose sees it. The node inventory
//! (`nodes.toml`), validated, and the per-node and cluster-wide files
//! regenerated from it. Pure model and file generation: no servers, no store.

pub mod inventory;
