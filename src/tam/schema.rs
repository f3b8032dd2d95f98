//! The access method's SQL objects: schema `bidim` (directory, configuration, jobs,
//! ordinal counters), schema `bidim_internal` (chunk relations), the access method,
//! the views and the event triggers, in `sql/tam_catalog.sql`; the SQL functions in
//! `sql/tam_api.sql` (pulled in by [`super::api`]).

pgrx::extension_sql_file!("../../sql/tam_catalog.sql", name = "tam_catalog", bootstrap);
