//! The encrypted record store on sled.
