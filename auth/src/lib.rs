//! Authentication for pluto.
