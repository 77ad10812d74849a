//! The phone ordering product: catalog, search, order sessions, their storage, the model's tools
//! and the agent's instructions.
//!
//! Everything here is plain synchronous Rust without I/O besides the catalog files and SQLite, so
//! the whole ordering logic is tested without a call, a model or a network. The agent calls the
//! tool handlers from a blocking task (SQLite commits wait for the disk).

pub mod catalog;
pub mod instructions;
pub mod normalize;
pub mod provider;
pub mod search;
pub mod store;
pub mod tools;

pub use catalog::{Catalog, CatalogError, Product, Unit};
pub use instructions::default_instructions;
pub use search::SearchResult;
pub use store::{OrderFilter, OrderStatus, OrderStore, StoreError, StoredOrder};
pub use tools::{handle_tool_call, tool_definitions, OrderContext, OrderSession};
