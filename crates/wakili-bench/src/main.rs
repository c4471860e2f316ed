//! `wakili-bench`: benchmark commands.

fn main() {}
