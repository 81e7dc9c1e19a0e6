//! Integration tests of the `sebs-local` binary, run as a user runs it.

mod packages;
