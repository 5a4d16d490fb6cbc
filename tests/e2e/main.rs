//! Whole-product scenarios, driven the way a user drives Fixbox: the `fixbox` command in a shell, and
//! the desktop app's real window through WebDriver.

mod browser;
mod cli;
mod desktop;
mod desktop_setup;
mod eval;
mod fix;
mod github;
mod installer;
mod llm;
mod llm_cli;
mod remote_docker;
mod warm;
