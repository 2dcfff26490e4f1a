//! Tests of sweep expansion.
