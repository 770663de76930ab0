//! The scaling engine (see issue 4).
