//! compose-cluster: the cluster as compose sees it. The node inventory
//! (`nodes.toml`), validated and editable in place, and the per-node and
//! cluster-wide files regenerated from it (`compose nodes regen`, compose's
//! update-cluster). No servers, no store: a model and the files it implies.

pub mod cpio;
mod edit;
pub mod hostkey;
pub mod inventory;
pub mod pxelinux;
pub mod regen;
pub mod render;
mod subnet;
mod validate;

pub use compose_nodeset::{NodeSet, NodeSetError};
pub use edit::{parse_mac_list, InventoryFile, NewNodes};
pub use inventory::{
    load_inventory, parse_inventory, Cluster, Inventory, InventoryError, Node, SelectError,
};
pub use pxelinux::pxelinux_links;
pub use regen::{apply, plan, Change, ChangeKind, RegenOptions, RegenPlan};
pub use subnet::Subnet;
pub use validate::Problem;
