//! Stands in for `maps.rs` in a build without clang: nothing can be loaded.

use std::convert::Infallible;

use super::KernelTotals;
use crate::server::ChannelRoute;

#[derive(Debug)]
pub(super) struct Maps(Infallible);

impl Maps {
    pub fn load(_interfaces: &[String]) -> Result<Self, String> {
        Err("kernel-relay-interface: this build of turn has no kernel relay (clang was missing when it \
             was built; install clang and build again)"
            .into())
    }

    pub fn install(&mut self, _route: &ChannelRoute) -> Result<(), ()> {
        match self.0 {}
    }

    pub fn withdraw(&mut self, _route: &ChannelRoute) {
        match self.0 {}
    }

    pub fn totals(&self) -> KernelTotals {
        match self.0 {}
    }
}
