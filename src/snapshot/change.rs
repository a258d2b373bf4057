//! What a step changed in a filesystem, in OCI changeset terms: the contract between the
//! snapshotters (which find changes) and the layer writer (which turns them into a tar).

/// One change, at a path relative to the root (`/`-separated, no leading `/`, never `.` or
/// `..` components).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// New or changed (content or metadata): the entry is written from the new tree.
    Upsert,
    /// Removed: written as a whiteout `.wh.<name>`.
    Delete,
    /// A directory whose lower contents are all hidden: written as the directory entry and
    /// `<dir>/.wh..wh..opq`.
    Opaque,
}
