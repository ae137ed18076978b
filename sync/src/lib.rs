//! Replication of monofs repositories: clone and backup sync between a local
//! repository and another one, on a local path or behind `monofs serve --http`.
