//! The TableKeeper: owns this party's tables (uploaded CSV files and their metadata) and answers
//! the socket's table requests. The Executor's `reader` and the Scheduler's acceptance check
//! read tables through their own read-only handles.
//!
//! Messages: [`UploadTable`], [`ListTables`], [`TableHead`], [`DeleteTable`]. Each does its
//! file and sled work on a blocking thread.

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use consort_protocol::TableInfo;
use consort_protocol::data::{CsvOptions, parse_csv};
use consort_storage::{Tables, valid_table_name};

use crate::failure::{Failure, blocking};

/// Keeps this party's tables.
pub struct TableKeeper {
    tables: Tables,
}

impl TableKeeper {
    /// A keeper of `tables`.
    pub fn new(tables: Tables) -> Self {
        Self { tables }
    }

    fn with_tables<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tables) -> Result<T, Failure> + Send + 'static,
    ) -> ResponseFuture<Result<T, Failure>> {
        let tables = self.tables.clone();
        Box::pin(async move { blocking(move || f(&tables)).await })
    }
}

impl Actor for TableKeeper {
    type Context = Context<Self>;
}

/// Reads a CSV file into table `name`; nothing is stored if any row is bad.
#[derive(Debug, Clone)]
pub struct UploadTable {
    /// Table name.
    pub name: String,
    /// The CSV file (absolute).
    pub path: String,
    /// Id column.
    pub id_column: String,
    /// Label column.
    pub label_column: Option<String>,
    /// Field delimiter (one byte).
    pub delimiter: u8,
    /// Replace a table of that name.
    pub replace: bool,
}

impl Message for UploadTable {
    type Result = Result<TableInfo, Failure>;
}

/// Handler for [`UploadTable`].
impl Handler<UploadTable> for TableKeeper {
    type Result = ResponseFuture<Result<TableInfo, Failure>>;

    fn handle(&mut self, msg: UploadTable, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_tables(move |tables| {
            let UploadTable {
                name,
                path,
                id_column,
                label_column,
                delimiter,
                replace,
            } = msg;
            if !valid_table_name(&name) {
                return Err(Failure::Invalid(format!(
                    "'{name}' is not a valid table name (1-64 of A-Z a-z 0-9 _ - ., not starting with '.')"
                )));
            }
            if !replace && tables.meta(&name).map_err(Failure::internal)?.is_some() {
                return Err(Failure::Invalid(format!(
                    "table '{name}' exists; delete it first or upload with --replace"
                )));
            }
            let file = std::fs::File::open(&path)
                .map_err(|e| Failure::Invalid(format!("cannot read {path}: {e}")))?;
            let opts = CsvOptions {
                id_column,
                label_column,
                delimiter,
            };
            let data = parse_csv(std::io::BufReader::new(file), &opts)
                .map_err(|e| Failure::Invalid(format!("{path}: {e}; nothing was stored")))?;
            tables.put(&name, &data, &path).map_err(Failure::internal)
        })
    }
}

/// Every table here.
#[derive(Debug, Clone)]
pub struct ListTables;

impl Message for ListTables {
    type Result = Result<Vec<TableInfo>, Failure>;
}

/// Handler for [`ListTables`].
impl Handler<ListTables> for TableKeeper {
    type Result = ResponseFuture<Result<Vec<TableInfo>, Failure>>;

    fn handle(&mut self, _msg: ListTables, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_tables(|tables| tables.list().map_err(Failure::internal))
    }
}

/// A table's first rows, as text.
#[derive(Debug, Clone)]
pub struct TableHead {
    /// Table name.
    pub name: String,
    /// How many rows.
    pub head: u64,
}

/// A table's metadata, header and first rows.
#[derive(Debug, Clone)]
pub struct Head {
    /// Metadata.
    pub table: TableInfo,
    /// `id`, then the label's name (if any), then the features'.
    pub header: Vec<String>,
    /// The rows, in the header's order.
    pub rows: Vec<Vec<String>>,
}

impl Message for TableHead {
    type Result = Result<Head, Failure>;
}

/// Handler for [`TableHead`].
impl Handler<TableHead> for TableKeeper {
    type Result = ResponseFuture<Result<Head, Failure>>;

    fn handle(&mut self, msg: TableHead, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_tables(move |tables| {
            let TableHead { name, head } = msg;
            let not_found = || Failure::NotFound(format!("no table '{name}' here"));
            let table = tables
                .meta(&name)
                .map_err(Failure::internal)?
                .ok_or_else(not_found)?;
            let data = tables
                .get(&name)
                .map_err(Failure::internal)?
                .ok_or_else(not_found)?;
            let mut header = vec!["id".to_owned()];
            header.extend(data.label_name.clone());
            header.extend(data.feature_names.iter().cloned());
            let rows = (0..data.rows().min(head as usize))
                .map(|i| {
                    let mut row = vec![data.ids[i].clone()];
                    if let Some(l) = &data.labels {
                        row.push(l[i].to_string());
                    }
                    row.extend(data.columns.iter().map(|c| c[i].to_string()));
                    row
                })
                .collect();
            Ok(Head {
                table,
                header,
                rows,
            })
        })
    }
}

/// Deletes a table.
#[derive(Debug, Clone)]
pub struct DeleteTable {
    /// Table name.
    pub name: String,
}

impl Message for DeleteTable {
    type Result = Result<TableInfo, Failure>;
}

/// Handler for [`DeleteTable`].
impl Handler<DeleteTable> for TableKeeper {
    type Result = ResponseFuture<Result<TableInfo, Failure>>;

    fn handle(&mut self, msg: DeleteTable, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_tables(move |tables| {
            let name = msg.name;
            let meta = tables
                .meta(&name)
                .map_err(Failure::internal)?
                .ok_or_else(|| Failure::NotFound(format!("no table '{name}' here")))?;
            tables.delete(&name).map_err(Failure::internal)?;
            Ok(meta)
        })
    }
}
