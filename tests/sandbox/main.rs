//! End-to-end tests of `monocore tmp`: real namespaces, cgroups and FUSE root filesystems.
