//! Base images: the official image of a language version, or our offline fallback.
