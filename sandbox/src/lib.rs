//! Sandbox runtimes for monocore: run an OCI image's command on a
//! copy-on-write monofs root filesystem, isolated by namespaces or a microVM.
