//! The phone ordering product: catalog, search, order sessions, their storage, the model's tools
//! and the agent's instructions.
//!
//! Everything here is plain synchronous Rust without I/O besides the catalog files and SQLite, so
//! the whole ordering logic is tested without a call, a model or a network. The agent calls the
//! tool handlers from a blocking task (SQLite commits wait for the disk).

// Layers, bottom first: a module uses only modules listed above it (checked by a test below).
pub mod catalog;
pub mod compound;
pub mod instructions;
pub mod lexicon;
pub mod normalize;
pub mod provider;
pub mod search;
pub mod store;
pub mod tools;
pub mod vocabulary;

pub use catalog::{Catalog, CatalogError};
pub use instructions::default_instructions;
pub use search::SearchResult;
pub use store::{OrderFilter, OrderStatus, OrderStore, StoreError, StoredOrder};
pub use tools::{handle_tool_call, tool_definitions, OrderContext, OrderSession};
pub use vocabulary::{Dim, Product, Unit};

#[cfg(test)]
mod layering {
    //! Issue 12: no import cycles and no upward arrows inside `ordering/`. The order of the
    //! `pub mod` lines above is the layering; this test reads the sources and fails on a `use`
    //! of a module that is not below the user.

    const LAYERS: [(&str, &str); 10] = [
        ("vocabulary", include_str!("vocabulary.rs")),
        ("normalize", include_str!("normalize.rs")),
        ("compound", include_str!("compound.rs")),
        ("lexicon", include_str!("lexicon.rs")),
        ("search", include_str!("search.rs")),
        ("catalog", include_str!("catalog.rs")),
        ("store", include_str!("store.rs")),
        ("instructions", include_str!("instructions.rs")),
        ("tools", include_str!("tools.rs")),
        ("provider", include_str!("provider.rs")),
    ];

    /// Modules of `ordering/` a source file names (`super::x`, `crate::ordering::x`), tests
    /// excluded (they may build a whole catalog).
    fn uses(src: &str) -> Vec<&'static str> {
        let code = src.split("#[cfg(test)]").next().unwrap_or(src);
        LAYERS
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| {
                code.contains(&format!("super::{m}"))
                    || code.contains(&format!("crate::ordering::{m}"))
                    || code.contains(&format!("super::{{{m}"))
            })
            .collect()
    }

    #[test]
    fn modules_only_use_lower_layers() {
        let mut wrong = Vec::new();
        for (i, (name, src)) in LAYERS.iter().enumerate() {
            for used in uses(src) {
                let j = LAYERS.iter().position(|(m, _)| *m == used).unwrap_or(0);
                if j >= i && used != *name {
                    wrong.push(format!("{name} uses {used}"));
                }
            }
        }
        assert!(wrong.is_empty(), "upward or circular imports: {wrong:?}");
        // The check itself sees imports.
        assert_eq!(
            uses("use super::normalize::{self, stem};"),
            vec!["normalize"]
        );
    }
}
