//! End-to-end tests of the monofs binary.
