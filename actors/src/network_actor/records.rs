//! The socket's replicated-record requests: [`PutRecord`] writes one of this party's records
//! through the network; [`GetRecord`] and [`ListRecords`] read the record store.

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::jobs::{JOB_KEY_PREFIXES, is_job_key};
use consort_protocol::peer::Record;

use super::NetworkActor;
use super::partners::net_failure;
use crate::failure::{Failure, blocking};

/// Writes one of this party's records, for every partner (keys of jobs are the Scheduler's).
#[derive(Debug, Clone)]
pub struct PutRecord {
    /// Key (1 to 512 bytes).
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
}

impl Message for PutRecord {
    type Result = Result<Record, Failure>;
}

/// Handler for [`PutRecord`].
impl Handler<PutRecord> for NetworkActor {
    type Result = ResponseFuture<Result<Record, Failure>>;

    fn handle(&mut self, msg: PutRecord, _ctx: &mut Context<Self>) -> Self::Result {
        let net = self.client.clone();
        Box::pin(async move {
            let PutRecord { key, value } = msg;
            if key.is_empty() || key.len() > 512 {
                return Err(Failure::Invalid("a record key is 1 to 512 bytes".into()));
            }
            if is_job_key(&key) {
                return Err(Failure::Invalid(format!(
                    "'{key}': keys under {} belong to the scheduler",
                    JOB_KEY_PREFIXES.join(", ")
                )));
            }
            net.put_record(key, value, Default::default())
                .await
                .map_err(net_failure)
        })
    }
}

/// One record held here.
#[derive(Debug, Clone)]
pub struct GetRecord {
    /// Its origin party.
    pub origin: String,
    /// Its key.
    pub key: String,
}

impl Message for GetRecord {
    type Result = Result<Option<Record>, Failure>;
}

/// Handler for [`GetRecord`].
impl Handler<GetRecord> for NetworkActor {
    type Result = ResponseFuture<Result<Option<Record>, Failure>>;

    fn handle(&mut self, msg: GetRecord, _ctx: &mut Context<Self>) -> Self::Result {
        let records = self.records.clone();
        Box::pin(async move {
            blocking(move || {
                records
                    .get(&msg.origin, &msg.key)
                    .map_err(Failure::internal)
            })
            .await
        })
    }
}

/// Every record held here.
#[derive(Debug, Clone)]
pub struct ListRecords;

impl Message for ListRecords {
    type Result = Result<Vec<Record>, Failure>;
}

/// Handler for [`ListRecords`].
impl Handler<ListRecords> for NetworkActor {
    type Result = ResponseFuture<Result<Vec<Record>, Failure>>;

    fn handle(&mut self, _msg: ListRecords, _ctx: &mut Context<Self>) -> Self::Result {
        let records = self.records.clone();
        Box::pin(async move { blocking(move || records.all().map_err(Failure::internal)).await })
    }
}
