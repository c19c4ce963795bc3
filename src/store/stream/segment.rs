//! Segment files: `{first offset:020}.segment`, a small header then chunks.
