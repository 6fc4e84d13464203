//! A build without the `redis` feature: one node, always. The hooks the
//! rest of the router calls do nothing, so that the default binary carries
//! none of the cluster's logic (`outgoing.rs`, `claims.rs` and `shadows.rs`
//! have the real ones).

// The hooks keep the clustered build's signatures, `&self` included.
#![allow(clippy::unused_self)]

use super::{Outgoing, Record};
use crate::methods::RpcError;
use crate::router::{ConnId, Delivery, Router};

impl Router {
    /// Nothing to hand to a Redis link.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        Vec::new()
    }

    pub(in crate::router) fn clustered(&self) -> bool {
        false
    }

    pub(in crate::router) fn node(&self) -> Option<&str> {
        None
    }

    pub(in crate::router) fn tell_link(&mut self, _item: Outgoing) {}

    pub(in crate::router) fn share(&mut self, _conn: ConnId, _record: impl FnOnce(u64) -> Record) {}

    pub(in crate::router) fn share_subscription(&mut self, _: ConnId, _: &str, _: bool) {}

    pub(in crate::router) fn share_join(&mut self, _conn: ConnId) {}

    pub(in crate::router) fn share_leave(&mut self, _: ConnId, _: &str, _: bool) {}

    pub(in crate::router) fn share_ack(&mut self, _conn: ConnId, _event_id: &str) {}

    pub(in crate::router) fn share_emit(
        &mut self,
        _: &str,
        _: &serde_json::value::RawValue,
        _: &str,
        _: &crate::router::Targets,
        _: bool,
        _: &[String],
    ) {
    }

    pub(in crate::router) fn share_call(
        &mut self,
        _conn: ConnId,
        _method: &str,
        _args: &serde_json::Value,
        run: impl FnOnce(&mut Router) -> Result<(serde_json::Value, Vec<Delivery>), RpcError>,
    ) -> Result<(serde_json::Value, Vec<Delivery>), RpcError> {
        run(self)
    }

    /// A single node goes on with an IDENTIFY at once.
    pub(in crate::router) fn claim(
        &mut self,
        _: ConnId,
        _: &str,
        _: &Option<String>,
        _: &[String],
    ) -> bool {
        false
    }

    pub(in crate::router) fn leave_cluster(&mut self) {}

    pub(in crate::router) fn begin_step(&mut self) {}

    pub(in crate::router) fn next_edit_seq(&mut self) -> u64 {
        0
    }

    pub(in crate::router) fn hold_while_claiming(
        &mut self,
        command: crate::router::Command,
    ) -> Result<crate::router::Command, Vec<Delivery>> {
        Ok(command)
    }

    pub(in crate::router) fn claim_group(
        &mut self,
        _: ConnId,
        _: crate::router::Seq,
        _: &str,
        _: &Option<String>,
    ) -> Option<Result<Vec<Delivery>, crate::router::RequestError>> {
        None
    }

    pub(in crate::router) fn release_group(&mut self, _owner: ConnId, _topic: &str) {}

    pub(in crate::router) fn claiming(&self, _name: &str) -> bool {
        false
    }

    pub(in crate::router) fn next_event_id(&mut self) -> Result<String, getrandom::Error> {
        crate::router::publish::event_id()
    }
}
