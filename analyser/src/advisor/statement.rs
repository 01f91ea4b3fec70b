//! What one statement asks of each table it reads: parsed with PostgreSQL's parser from the
//! normalised text pg_stat_statements keeps (`$1` for constants). Handles SELECT (with joins),
//! UPDATE and DELETE, and INSERT as a bare table use; conditions under OR or NOT are left alone
//! (no single index serves them).
//!
//! A column is filtered when it is compared with a *value*: an expression the statement fixes
//! before the scan, so an index can look it up. A value references no column (every column at a
//! statement's top level belongs to its FROM, UPDATE or DELETE target), holds no sub-query, no
//! aggregate or window function and no volatile function; it is built from parameters, constants,
//! casts, operators, boolean expressions, calls of other functions, `CURRENT_DATE` and its kin,
//! `CASE`, `COALESCE`, `NULLIF`, `GREATEST`, `LEAST` and arrays. So `created_at > now() -
//! interval '1 day'` and `email = lower($1)` filter, `x = random()` does not. Volatile functions
//! are known by name from [`VOLATILE_FUNCTIONS`]; a user-defined volatile function is taken for a
//! value, and HypoPG's cost check downstream catches it: the planner cannot use an index for a
//! comparison with a volatile expression, so the candidate saves nothing. An expression of a kind
//! this module does not know is never a value.
//!
//! Besides plain columns it records an equality on an immutable expression of one column (for an
//! expression index) and, for a SELECT, every column the statement reads of each table (for a
//! covering index).

use pg_query::NodeEnum;
use pg_query::protobuf::a_const::Val;
use pg_query::protobuf::{
    AExprKind, BoolExprType, ColumnRef, FuncCall, LimitOption, Node, ResTarget, SelectStmt,
    SetOperation, SortByDir,
};
use proto::sql::SqlConstant;

/// PostgreSQL's volatile functions an application is likely to call (`provolatile = 'v'` in
/// `pg_proc`, and in the uuid-ossp and pgcrypto extensions), matched by the function's last name
/// part, ignoring case. `txid_current` and `pg_current_xact_id` are stable, not volatile.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "random_normal",
    "setseed",
    "nextval",
    "currval",
    "lastval",
    "setval",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "gen_random_bytes",
    "gen_salt",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "set_config",
    "pg_notify",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "pg_current_wal_lsn",
    "pg_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_total_relation_size",
    "pg_database_size",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "txid_status",
    "pg_xact_status",
];

/// Functions immutable for every argument type (`provolatile = 'i'` in `pg_proc`), so an
/// expression index may use them; matched exactly, unqualified or in `pg_catalog`. Left out:
/// `date` and `date_trunc` (stable for `timestamptz`), and for the same reason casts and operators
/// (`timestamptz::date`, `timestamptz + interval`).
const IMMUTABLE_FUNCTIONS: &[&str] = &[
    "abs",
    "btrim",
    "initcap",
    "left",
    "lower",
    "ltrim",
    "md5",
    "reverse",
    "right",
    "rtrim",
    "substr",
    "substring",
    "upper",
];

/// PostgreSQL's built-in aggregates callable without special syntax, matched like
/// [`VOLATILE_FUNCTIONS`]. Ordered-set and hypothetical-set aggregates need `WITHIN GROUP` and
/// window functions need `OVER`, which the parse tree shows.
const AGGREGATE_FUNCTIONS: &[&str] = &[
    "any_value",
    "array_agg",
    "avg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "corr",
    "count",
    "covar_pop",
    "covar_samp",
    "every",
    "json_agg",
    "json_object_agg",
    "jsonb_agg",
    "jsonb_object_agg",
    "max",
    "min",
    "range_agg",
    "range_intersect_agg",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "var_pop",
    "var_samp",
    "variance",
    "xmlagg",
];

/// How a statement uses one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableUse {
    /// Empty when the statement does not name the schema.
    pub schema: String,
    pub table: String,
    /// Columns compared with `=`, `IN` or `= ANY` to a value, in the order they appear.
    pub equality: Vec<String>,
    /// Expressions over one column of this table compared with `=`, `IN` or `= ANY` to a value, as
    /// `CREATE INDEX … ((expression))` needs them: column unqualified, quoted where needed. Only
    /// [`IMMUTABLE_FUNCTIONS`], `COALESCE` and constants, so the expression can be indexed.
    pub equality_expressions: Vec<String>,
    /// Columns of `equality` compared with `=` to a constant written in the text (`status =
    /// 'pending'`, or a parameter the collector saw fixed and `with_constants` put back), for a
    /// partial index.
    pub equality_constants: Vec<(String, SqlConstant)>,
    /// Columns compared with `<`, `>`, `<=`, `>=` or `BETWEEN` to values.
    pub range: Vec<String>,
    /// Columns compared with another table's column.
    pub join: Vec<String>,
    /// `ORDER BY` columns of this table with `true` for DESC, when every sort key is one of them.
    pub order_by: Vec<(String, bool)>,
    pub limit: bool,
    /// For a SELECT, the columns of this table the statement names anywhere (select list,
    /// JOIN conditions, WHERE, GROUP BY, HAVING, WINDOW, ORDER BY), each once, in the order they
    /// first appear: what an index must hold for an index-only scan. `None` when the statement is
    /// not a SELECT, reads the whole row (`*`, `t.*`, `t` as a value) or names a column this
    /// module cannot attribute (an unqualified name among several sources, a sub-query, an
    /// expression it does not know, `JOIN … USING`, `NATURAL JOIN`, an output name in GROUP BY).
    pub read_columns: Option<Vec<String>>,
    /// A SELECT of this one table whose every returned row is a row that matched its filter: no
    /// join, grouping, aggregate, window function, DISTINCT, set operation or LIMIT. Its rows per
    /// call then measure how selective its filter is.
    pub returns_matching_rows: bool,
}

impl TableUse {
    /// Whether an index could serve this use: it filters, joins or sorts on something.
    pub fn may_use_an_index(&self) -> bool {
        !self.equality.is_empty()
            || !self.equality_expressions.is_empty()
            || !self.range.is_empty()
            || !self.join.is_empty()
            || !self.order_by.is_empty()
    }

    fn add(list: &mut Vec<String>, column: &str) {
        if !list.iter().any(|c| c == column) {
            list.push(column.to_owned());
        }
    }
}

/// Why a statement's text was not analysed.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("statement does not parse: {0}")]
    Parse(#[from] pg_query::Error),
    #[error("{0} statements where one was expected")]
    NotOneStatement(usize),
}

/// The tables a statement reads and how; an error when the text does not parse or holds more
/// than one statement (pg_stat_statements keeps one per entry; anything else is not probed).
pub fn analyse(sql: &str) -> Result<Vec<TableUse>, StatementError> {
    let parsed = pg_query::parse(sql, 0)?;
    if parsed.protobuf.stmts.len() != 1 {
        return Err(StatementError::NotOneStatement(parsed.protobuf.stmts.len()));
    }
    let mut uses = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::SelectStmt(select) => {
                let mut tables = Vec::new();
                let mut only_tables = true;
                for from in &select.from_clause {
                    only_tables &= collect_tables(from, &mut tables);
                }
                let mut scope = Scope::new(tables, only_tables);
                if let Some(condition) = &select.where_clause {
                    scope.condition(condition);
                }
                for from in &select.from_clause {
                    scope.join_conditions(from);
                }
                scope.order_by(&select.sort_clause, &output_names(&select.target_list));
                scope.read_columns(select);
                if select.limit_count.is_some() {
                    for t in &mut scope.uses {
                        t.limit = true;
                    }
                }
                if only_tables && scope.uses.len() == 1 && returns_matching_rows(select) {
                    scope.uses[0].returns_matching_rows = true;
                }
                uses.extend(scope.uses);
            }
            NodeEnum::UpdateStmt(update) => {
                if let Some(relation) = &update.relation {
                    let only_target = update.from_clause.is_empty();
                    let mut scope = Scope::new(vec![table_of(relation)], only_target);
                    if let Some(condition) = &update.where_clause {
                        scope.condition(condition);
                    }
                    uses.extend(scope.uses);
                }
            }
            NodeEnum::InsertStmt(insert) => {
                // Written, not searched: no columns, only the table (verification follows the
                // write cost an index adds).
                if let Some(relation) = &insert.relation {
                    uses.push(table_of(relation).use_);
                }
            }
            NodeEnum::DeleteStmt(delete) => {
                if let Some(relation) = &delete.relation {
                    let only_target = delete.using_clause.is_empty();
                    let mut scope = Scope::new(vec![table_of(relation)], only_target);
                    if let Some(condition) = &delete.where_clause {
                        scope.condition(condition);
                    }
                    uses.extend(scope.uses);
                }
            }
            _ => {}
        }
    }
    Ok(uses)
}

/// Whether every row a single-table SELECT returns is one row that matched its filter.
fn returns_matching_rows(select: &SelectStmt) -> bool {
    select.group_clause.is_empty()
        && select.distinct_clause.is_empty()
        && select.having_clause.is_none()
        && select.window_clause.is_empty()
        && select.limit_count.is_none()
        && select.limit_offset.is_none()
        && select.op == SetOperation::SetopNone as i32
        && select.target_list.iter().all(|target| {
            let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
                return false;
            };
            let Some(value) = target.val.as_ref() else {
                return false;
            };
            // `*`, columns and expressions of them, but no aggregate or window function.
            matches!(value.node.as_ref(), Some(NodeEnum::ColumnRef(_)))
                || every_node(value, &mut |n| match n {
                    NodeEnum::FuncCall(call) => !is_aggregate_or_window(call),
                    _ => true,
                })
        })
}

/// pg_stat_statements writes a typed literal such as `interval '1 day'` as `interval $1`, which
/// no parser accepts; this rewrites it as the equivalent `$1::interval` (also `date`, `time`,
/// `timestamp`, `timestamptz`, with or without time zone), leaving quoted text and comments as
/// they are.
pub fn parseable(sql: &str) -> String {
    // With `pg_stat_statements.track = all`, a statement first seen while the advisor probed it
    // keeps the probe's text: `PREPARE sm_probe_<n> AS <statement>`. The statement is what counts.
    let sql = match sql.strip_prefix("PREPARE sm_probe_") {
        Some(rest) => rest
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .strip_prefix(" AS ")
            .unwrap_or(sql),
        None => sql,
    };
    const TYPES: &[&str] = &[
        "timestamp with time zone",
        "timestamp without time zone",
        "time with time zone",
        "time without time zone",
        "timestamptz",
        "timestamp",
        "interval",
        "date",
        "time",
    ];
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &sql[i..];
        // Quoted text, quoted identifiers and comments are copied whole.
        let skip = match bytes[i] {
            b'\'' => rest[1..].find('\'').map(|e| e + 2),
            b'"' => rest[1..].find('"').map(|e| e + 2),
            b'-' if rest.starts_with("--") => Some(rest.find('\n').unwrap_or(rest.len())),
            b'/' if rest.starts_with("/*") => rest.find("*/").map(|e| e + 2),
            _ => None,
        };
        if let Some(length) = skip {
            out.push_str(&rest[..length]);
            i += length;
            continue;
        }
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if at_word_start && bytes[i].is_ascii_alphabetic() {
            let typed = TYPES.iter().find_map(|t| {
                let head = rest.get(..t.len())?;
                if !head.eq_ignore_ascii_case(t) {
                    return None;
                }
                let after = &rest[t.len()..];
                let spaces = after.len() - after.trim_start().len();
                let parameter = after[spaces..].strip_prefix('$')?;
                let digits = parameter.bytes().take_while(u8::is_ascii_digit).count();
                (spaces > 0 && digits > 0)
                    .then(|| (t.len() + spaces + 1 + digits, &parameter[..digits], *t))
            });
            if let Some((length, number, type_name)) = typed {
                out.push_str(&format!("${number}::{type_name}"));
                i += length;
                continue;
            }
        }
        let width = rest.chars().next().map_or(1, char::len_utf8);
        out.push_str(&rest[..width]);
        i += width;
    }
    out
}

/// A table of the FROM clause with the name the statement refers to it by.
struct Named {
    alias: String,
    use_: TableUse,
}

fn table_of(relation: &pg_query::protobuf::RangeVar) -> Named {
    Named {
        alias: relation
            .alias
            .as_ref()
            .map(|a| a.aliasname.clone())
            .unwrap_or_else(|| relation.relname.clone()),
        use_: TableUse {
            schema: relation.schemaname.clone(),
            table: relation.relname.clone(),
            ..Default::default()
        },
    }
}

/// Collects the tables of one FROM item; false when it also holds something else (a sub-query,
/// a function), whose columns an unqualified name could mean.
fn collect_tables(node: &Node, out: &mut Vec<Named>) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::RangeVar(relation)) => {
            out.push(table_of(relation));
            true
        }
        Some(NodeEnum::JoinExpr(join)) => {
            let mut only_tables = true;
            for side in [&join.larg, &join.rarg].into_iter().flatten() {
                only_tables &= collect_tables(side, out);
            }
            only_tables
        }
        _ => false,
    }
}

/// Gathers the ON conditions of a FROM item; false for `USING` or `NATURAL`, whose columns belong
/// to both sides.
fn collect_join_conditions<'a>(node: &'a Node, out: &mut Vec<&'a Node>) -> bool {
    let Some(NodeEnum::JoinExpr(join)) = node.node.as_ref() else {
        return true;
    };
    if join.is_natural || !join.using_clause.is_empty() {
        return false;
    }
    let mut attributable = true;
    for side in [&join.larg, &join.rarg].into_iter().flatten() {
        attributable &= collect_join_conditions(side, out);
    }
    out.extend(join.quals.as_deref());
    attributable
}

/// The names a SELECT gives its output columns (`AS name`), which ORDER BY may refer to.
fn output_names(target_list: &[Node]) -> Vec<&str> {
    target_list
        .iter()
        .filter_map(|t| match t.node.as_ref() {
            Some(NodeEnum::ResTarget(target)) if !target.name.is_empty() => {
                Some(target.name.as_str())
            }
            _ => None,
        })
        .collect()
}

struct Scope {
    names: Vec<String>,
    uses: Vec<TableUse>,
    /// The table an unqualified column belongs to: the only source of the statement's rows.
    unqualified_owner: Option<usize>,
}

/// One side of a comparison.
enum Operand<'a> {
    Column(usize, String),
    Value,
    /// An indexable expression over one column of the table at this index.
    Expression(usize, &'a Node),
    Other,
}

/// What a column reference names.
enum Reference<'a> {
    /// A column of the table at this index of the scope.
    Column(usize, &'a str),
    /// `t.*`: every column of the table at this index.
    WholeRow(usize),
    /// A column of a sub-query or function of the FROM clause.
    Elsewhere,
    /// `*`, or an unqualified name when several sources could hold it.
    Unattributable,
}

impl Scope {
    fn new(tables: Vec<Named>, only_tables: bool) -> Self {
        let (names, uses): (Vec<String>, Vec<TableUse>) =
            tables.into_iter().map(|n| (n.alias, n.use_)).unzip();
        let unqualified_owner = (only_tables && uses.len() == 1).then_some(0);
        Self {
            names,
            uses,
            unqualified_owner,
        }
    }

    /// The table a column reference belongs to: by its qualifier, or the only table in scope.
    fn reference<'a>(&self, column: &'a ColumnRef) -> Reference<'a> {
        let parts: Vec<Option<&str>> = column
            .fields
            .iter()
            .map(|f| match f.node.as_ref() {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            })
            .collect();
        let table = |qualifier: &str| self.names.iter().position(|n| n == qualifier);
        match parts.as_slice() {
            [Some(name)] => self
                .unqualified_owner
                .map_or(Reference::Unattributable, |t| Reference::Column(t, name)),
            [Some(qualifier), Some(name)] => {
                table(qualifier).map_or(Reference::Elsewhere, |t| Reference::Column(t, name))
            }
            [Some(qualifier), None] => {
                table(qualifier).map_or(Reference::Elsewhere, Reference::WholeRow)
            }
            _ => Reference::Unattributable,
        }
    }

    fn column(&self, node: &Node) -> Option<(usize, String)> {
        match node.node.as_ref() {
            Some(NodeEnum::ColumnRef(column)) => match self.reference(column) {
                Reference::Column(table, name) => Some((table, name.to_owned())),
                _ => None,
            },
            _ => None,
        }
    }

    fn operand<'a>(&self, node: &'a Node) -> Operand<'a> {
        if let Some((table, name)) = self.column(node) {
            Operand::Column(table, name)
        } else if is_value(node) {
            Operand::Value
        } else if let Some(table) = self.indexable_expression_table(node) {
            Operand::Expression(table, node)
        } else {
            Operand::Other
        }
    }

    /// The table of a function call or `COALESCE` over exactly one column of one table in scope,
    /// built only of [`IMMUTABLE_FUNCTIONS`], `COALESCE` and constants (not parameters: an index
    /// cannot hold a value that changes with each execution).
    fn indexable_expression_table(&self, node: &Node) -> Option<usize> {
        if !matches!(
            node.node,
            Some(NodeEnum::FuncCall(_) | NodeEnum::CoalesceExpr(_))
        ) {
            return None;
        }
        let mut column: Option<(usize, String)> = None;
        let indexable = every_node(node, &mut |n| match n {
            NodeEnum::FuncCall(call) => is_immutable(call),
            NodeEnum::CoalesceExpr(_) | NodeEnum::AConst(_) => true,
            NodeEnum::ColumnRef(reference) => match self.reference(reference) {
                Reference::Column(table, name) => match &column {
                    None => {
                        column = Some((table, name.to_owned()));
                        true
                    }
                    Some((seen_table, seen_name)) => *seen_table == table && seen_name == name,
                },
                _ => false,
            },
            _ => false,
        });
        if indexable {
            column.map(|(table, _)| table)
        } else {
            None
        }
    }

    /// Walks an AND tree; OR and NOT subtrees are skipped.
    fn condition(&mut self, node: &Node) {
        match node.node.as_ref() {
            Some(NodeEnum::BoolExpr(expr)) if expr.boolop == BoolExprType::AndExpr as i32 => {
                for arg in &expr.args {
                    self.condition(arg);
                }
            }
            Some(NodeEnum::AExpr(expr)) => self.comparison(expr),
            _ => {}
        }
    }

    fn comparison(&mut self, expr: &pg_query::protobuf::AExpr) {
        let (Some(left), Some(right)) = (&expr.lexpr, &expr.rexpr) else {
            return;
        };
        let Some(comparison) = Comparison::of(expr) else {
            return;
        };
        match (self.operand(left), self.operand(right)) {
            (Operand::Column(a, ca), Operand::Column(b, cb))
                if a != b && comparison == Comparison::PLAIN_EQUALITY =>
            {
                TableUse::add(&mut self.uses[a].join, &ca);
                TableUse::add(&mut self.uses[b].join, &cb);
            }
            (Operand::Column(t, c), Operand::Value) => {
                self.filtered(t, &c, comparison.kind);
                if comparison == Comparison::PLAIN_EQUALITY {
                    self.constant_filtered(t, &c, right);
                }
            }
            (Operand::Value, Operand::Column(t, c)) if comparison.mirrors => {
                self.filtered(t, &c, comparison.kind);
                if comparison == Comparison::PLAIN_EQUALITY {
                    self.constant_filtered(t, &c, left);
                }
            }
            (Operand::Expression(t, expression), Operand::Value)
                if comparison.kind == Filter::Equality =>
            {
                self.expression_filtered(t, expression)
            }
            (Operand::Value, Operand::Expression(t, expression))
                if comparison == Comparison::PLAIN_EQUALITY =>
            {
                self.expression_filtered(t, expression)
            }
            _ => {}
        }
    }

    fn filtered(&mut self, table: usize, column: &str, kind: Filter) {
        let use_ = &mut self.uses[table];
        match kind {
            Filter::Equality => TableUse::add(&mut use_.equality, column),
            Filter::Range => TableUse::add(&mut use_.range, column),
        }
    }

    fn constant_filtered(&mut self, table: usize, column: &str, value: &Node) {
        let constants = &mut self.uses[table].equality_constants;
        if let Some(constant) = constant_of(value)
            && !constants.iter().any(|(c, _)| c == column)
        {
            constants.push((column.to_owned(), constant));
        }
    }

    fn expression_filtered(&mut self, table: usize, expression: &Node) {
        if let Some(text) = index_expression_text(expression) {
            TableUse::add(&mut self.uses[table].equality_expressions, &text);
        }
    }

    fn join_conditions(&mut self, node: &Node) {
        if let Some(NodeEnum::JoinExpr(join)) = node.node.as_ref() {
            if let Some(quals) = &join.quals {
                self.condition(quals);
            }
            for side in [&join.larg, &join.rarg].into_iter().flatten() {
                self.join_conditions(side);
            }
        }
    }

    /// Records [`TableUse::read_columns`] of every table of a SELECT.
    fn read_columns(&mut self, select: &SelectStmt) {
        let mut reads = vec![Some(Vec::new()); self.uses.len()];
        let attributed = self.collect_read_columns(select, &mut reads);
        for (use_, read) in self.uses.iter_mut().zip(reads) {
            use_.read_columns = if attributed { read } else { None };
        }
    }

    /// Adds the columns each clause of a SELECT names, in the order the clauses are written;
    /// false when one cannot be attributed.
    fn collect_read_columns(&self, select: &SelectStmt, reads: &mut [Option<Vec<String>>]) -> bool {
        let output_names = output_names(&select.target_list);
        // Plain DISTINCT is a list holding one empty node; DISTINCT ON holds expressions.
        let distinct_on = select.distinct_clause.iter().filter(|n| n.node.is_some());
        let targets = select
            .target_list
            .iter()
            .filter_map(|t| match t.node.as_ref() {
                Some(NodeEnum::ResTarget(target)) => target.val.as_deref(),
                _ => None,
            });
        let mut join_conditions = Vec::new();
        for from in &select.from_clause {
            if !collect_join_conditions(from, &mut join_conditions) {
                return false;
            }
        }
        let groups_by_output_name = select
            .group_clause
            .iter()
            .any(|g| bare_name(g).is_some_and(|name| output_names.contains(&name)));
        if groups_by_output_name {
            return false;
        }
        // ORDER BY an output name sorts by that output column, whose columns are already read.
        let sort_keys = select
            .sort_clause
            .iter()
            .filter(|item| match item.node.as_ref() {
                Some(NodeEnum::SortBy(sort)) => !sort
                    .node
                    .as_deref()
                    .and_then(bare_name)
                    .is_some_and(|name| output_names.contains(&name)),
                _ => true,
            });
        distinct_on
            .chain(targets)
            .chain(join_conditions)
            .chain(select.where_clause.as_deref())
            .chain(&select.group_clause)
            .chain(select.having_clause.as_deref())
            .chain(&select.window_clause)
            .chain(sort_keys)
            .all(|clause| self.collect_columns(clause, reads))
    }

    /// Adds the columns one expression names to `reads`; false when an expression is unknown.
    fn collect_columns(&self, expression: &Node, reads: &mut [Option<Vec<String>>]) -> bool {
        every_node(expression, &mut |n| {
            let NodeEnum::ColumnRef(column) = n else {
                return true;
            };
            let reference = match self.whole_row_by_name(column) {
                Some(table) => Reference::WholeRow(table),
                None => self.reference(column),
            };
            match reference {
                Reference::Column(table, name) => {
                    if let Some(columns) = &mut reads[table] {
                        TableUse::add(columns, name);
                    }
                }
                Reference::WholeRow(table) => reads[table] = None,
                Reference::Elsewhere => {}
                Reference::Unattributable => reads.iter_mut().for_each(|r| *r = None),
            }
            true
        })
    }

    /// The table a bare name such as `SELECT t FROM t` may mean as a whole row. PostgreSQL takes
    /// a column of that name first; not knowing the columns, this takes the whole row.
    fn whole_row_by_name(&self, column: &ColumnRef) -> Option<usize> {
        let [field] = column.fields.as_slice() else {
            return None;
        };
        match field.node.as_ref() {
            Some(NodeEnum::String(s)) => self.names.iter().position(|n| *n == s.sval),
            _ => None,
        }
    }

    /// Records the sort on a table when every sort key is a plain column of that one table (not
    /// an output column's name).
    fn order_by(&mut self, sort_clause: &[Node], output_names: &[&str]) {
        let mut keys = Vec::new();
        for item in sort_clause {
            let Some(NodeEnum::SortBy(sort)) = item.node.as_ref() else {
                return;
            };
            let Some(key) = sort.node.as_deref() else {
                return;
            };
            if bare_name(key).is_some_and(|name| output_names.contains(&name)) {
                return;
            }
            let Some((table, column)) = self.column(key) else {
                return;
            };
            keys.push((
                table,
                column,
                sort.sortby_dir == SortByDir::SortbyDesc as i32,
            ));
        }
        let Some(first) = keys.first().map(|k| k.0) else {
            return;
        };
        if keys.iter().all(|k| k.0 == first) {
            self.uses[first].order_by = keys.into_iter().map(|(_, c, desc)| (c, desc)).collect();
        }
    }
}

/// The name of an unqualified column reference.
fn bare_name(node: &Node) -> Option<&str> {
    let Some(NodeEnum::ColumnRef(column)) = node.node.as_ref() else {
        return None;
    };
    match column.fields.as_slice() {
        [field] => match field.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        },
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Equality,
    Range,
}

/// A comparison an index can serve, of a column on the left with a value on the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Comparison {
    kind: Filter,
    /// The value may stand on the left too (`$1 < created_at`); not for `IN`, `= ANY` and
    /// `BETWEEN`, whose right side is a list or an array.
    mirrors: bool,
}

impl Comparison {
    /// `a = b`, the only comparison that joins two tables' columns.
    const PLAIN_EQUALITY: Self = Self {
        kind: Filter::Equality,
        mirrors: true,
    };

    fn of(expr: &pg_query::protobuf::AExpr) -> Option<Self> {
        let operator = match expr.name.as_slice() {
            [name] => match name.node.as_ref() {
                Some(NodeEnum::String(s)) => s.sval.as_str(),
                _ => return None,
            },
            _ => return None,
        };
        let kind = AExprKind::try_from(expr.kind).ok()?;
        let (kind, mirrors) = match (kind, operator) {
            (AExprKind::AexprOp, "=") => (Filter::Equality, true),
            (AExprKind::AexprOp, "<" | ">" | "<=" | ">=") => (Filter::Range, true),
            (AExprKind::AexprIn | AExprKind::AexprOpAny, "=") => (Filter::Equality, false),
            (AExprKind::AexprBetween | AExprKind::AexprBetweenSym, _) => (Filter::Range, false),
            _ => return None,
        };
        Some(Self { kind, mirrors })
    }
}

/// A constant written as one (`'pending'`, `42`, `-1.5`, `true`), or cast to a type
/// (`'pending'::text`, as PostgreSQL writes an index predicate back).
fn constant_of(node: &Node) -> Option<SqlConstant> {
    match node.node.as_ref()? {
        NodeEnum::AConst(constant) if !constant.isnull => match constant.val.as_ref()? {
            Val::Ival(i) => Some(SqlConstant::Integer(i.ival.into())),
            Val::Fval(f) => SqlConstant::number(&f.fval),
            Val::Sval(s) => SqlConstant::text(&s.sval),
            Val::Boolval(b) => Some(SqlConstant::Boolean(b.boolval)),
            Val::Bsval(_) => None,
        },
        NodeEnum::TypeCast(cast) => constant_of(cast.arg.as_ref()?),
        _ => None,
    }
}

/// `column = constant` (either way round, the column possibly cast, as PostgreSQL writes an
/// index predicate back: `(status)::text = 'pending'::text`) → the column and the constant.
pub fn column_equals_constant(node: &Node) -> Option<(String, SqlConstant)> {
    let Some(NodeEnum::AExpr(expr)) = node.node.as_ref() else {
        return None;
    };
    if Comparison::of(expr)? != Comparison::PLAIN_EQUALITY
        || AExprKind::try_from(expr.kind).ok()? != AExprKind::AexprOp
    {
        return None;
    }
    fn column(n: &Node) -> Option<&str> {
        match n.node.as_ref()? {
            NodeEnum::TypeCast(cast) => bare_name(cast.arg.as_ref()?),
            _ => bare_name(n),
        }
    }
    let (left, right) = (expr.lexpr.as_ref()?, expr.rexpr.as_ref()?);
    match (column(left), column(right)) {
        (Some(c), None) => Some((c.to_owned(), constant_of(right)?)),
        (None, Some(c)) => Some((c.to_owned(), constant_of(left)?)),
        _ => None,
    }
}

/// `normalised` (pg_stat_statements' text) with each `$n` of `constants` replaced by its literal;
/// `None` when the text does not scan. Everything else stays as written.
pub fn with_constants(normalised: &str, constants: &[(i32, SqlConstant)]) -> Option<String> {
    if constants.is_empty() {
        return Some(normalised.to_owned());
    }
    let tokens = pg_query::scan_tokens(normalised).ok()?;
    let mut out = String::with_capacity(normalised.len() + 16);
    let mut copied = 0;
    for token in tokens {
        if token.token != pg_query::protobuf::Token::Param as i32 {
            continue;
        }
        let (start, end) = (token.start as usize, token.end as usize);
        let number: Option<i32> = normalised
            .get(start..end)
            .and_then(|t| t.strip_prefix('$'))
            .and_then(|n| n.parse().ok());
        let Some((_, constant)) = constants.iter().find(|(n, _)| Some(*n) == number) else {
            continue;
        };
        out.push_str(normalised.get(copied..start)?);
        out.push_str(&constant.literal());
        copied = end;
    }
    out.push_str(normalised.get(copied..)?);
    Some(out)
}

/// Whether an expression is fixed before the scan (see the module documentation).
fn is_value(node: &Node) -> bool {
    every_node(node, &mut |n| match n {
        NodeEnum::ColumnRef(_) => false,
        NodeEnum::FuncCall(call) => !is_aggregate_or_window(call) && !is_volatile(call),
        _ => true,
    })
}

/// The function's own name, without its schema.
fn function_name(call: &FuncCall) -> Option<&str> {
    match call.funcname.last()?.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.as_str()),
        _ => None,
    }
}

fn is_named_in(call: &FuncCall, list: &[&str]) -> bool {
    function_name(call).is_some_and(|name| list.iter().any(|l| l.eq_ignore_ascii_case(name)))
}

fn is_volatile(call: &FuncCall) -> bool {
    function_name(call).is_none() || is_named_in(call, VOLATILE_FUNCTIONS)
}

/// A plain call (no aggregate or window syntax) of one of [`IMMUTABLE_FUNCTIONS`], unqualified or
/// in `pg_catalog`; case matters, as a quoted `"LOWER"` is another function.
fn is_immutable(call: &FuncCall) -> bool {
    let names: Vec<Option<&str>> = call
        .funcname
        .iter()
        .map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    let name = match names.as_slice() {
        [Some(name)] | [Some("pg_catalog"), Some(name)] => *name,
        _ => return false,
    };
    IMMUTABLE_FUNCTIONS.contains(&name) && !is_aggregate_or_window(call) && !call.func_variadic
}

/// An indexable expression as `CREATE INDEX … ((expression))` takes it: deparsed by PostgreSQL's
/// deparser with its column unqualified.
fn index_expression_text(expression: &Node) -> Option<String> {
    let mut expression = expression.clone();
    unqualify_columns(&mut expression);
    let select = SelectStmt {
        target_list: vec![Node {
            node: Some(NodeEnum::ResTarget(Box::new(ResTarget {
                val: Some(Box::new(expression)),
                ..Default::default()
            }))),
        }],
        op: SetOperation::SetopNone as i32,
        limit_option: LimitOption::Default as i32,
        ..Default::default()
    };
    let text = NodeEnum::SelectStmt(Box::new(select))
        .deparse(Default::default())
        .ok()?;
    text.strip_prefix("SELECT ").map(str::to_owned)
}

/// Drops the table qualifier of every column reference in an indexable expression (function
/// calls, `COALESCE`, constants and columns: the only kinds one holds).
fn unqualify_columns(node: &mut Node) {
    match node.node.as_mut() {
        Some(NodeEnum::ColumnRef(column)) => {
            let qualifiers = column.fields.len().saturating_sub(1);
            column.fields.drain(..qualifiers);
        }
        Some(NodeEnum::FuncCall(call)) => call.args.iter_mut().for_each(unqualify_columns),
        Some(NodeEnum::CoalesceExpr(coalesce)) => {
            coalesce.args.iter_mut().for_each(unqualify_columns)
        }
        _ => {}
    }
}

fn is_aggregate_or_window(call: &FuncCall) -> bool {
    call.agg_star
        || call.agg_distinct
        || call.agg_within_group
        || !call.agg_order.is_empty()
        || call.agg_filter.is_some()
        || call.over.is_some()
        || is_named_in(call, AGGREGATE_FUNCTIONS)
}

/// Visits `node` and everything under it, parents first; false as soon as `visit` refuses a
/// node or a node is not one [`sub_expressions`] knows.
fn every_node<F: FnMut(&NodeEnum) -> bool>(node: &Node, visit: &mut F) -> bool {
    let Some(inner) = node.node.as_ref() else {
        return false;
    };
    visit(inner)
        && sub_expressions(inner)
            .is_some_and(|children| children.into_iter().all(|c| every_node(c, visit)))
}

/// The expressions directly under an expression node; `None` for a node this module does not
/// know, sub-queries (`SubLink`) among them.
fn sub_expressions(node: &NodeEnum) -> Option<Vec<&Node>> {
    let mut children: Vec<&Node> = Vec::new();
    match node {
        NodeEnum::ColumnRef(_)
        | NodeEnum::ParamRef(_)
        | NodeEnum::AConst(_)
        | NodeEnum::SqlvalueFunction(_)
        | NodeEnum::String(_)
        | NodeEnum::AStar(_) => {}
        NodeEnum::TypeCast(cast) => children.extend(cast.arg.as_deref()),
        NodeEnum::CollateClause(collate) => children.extend(collate.arg.as_deref()),
        NodeEnum::NullTest(test) => children.extend(test.arg.as_deref()),
        NodeEnum::BooleanTest(test) => children.extend(test.arg.as_deref()),
        NodeEnum::NamedArgExpr(named) => children.extend(named.arg.as_deref()),
        NodeEnum::AExpr(expr) => {
            children.extend(expr.lexpr.as_deref());
            children.extend(expr.rexpr.as_deref());
        }
        NodeEnum::BoolExpr(expr) => children.extend(&expr.args),
        NodeEnum::FuncCall(call) => {
            children.extend(&call.args);
            children.extend(&call.agg_order);
            children.extend(call.agg_filter.as_deref());
            if let Some(window) = &call.over {
                children.extend(&window.partition_clause);
                children.extend(&window.order_clause);
                children.extend(window.start_offset.as_deref());
                children.extend(window.end_offset.as_deref());
            }
        }
        NodeEnum::CaseExpr(case) => {
            children.extend(case.arg.as_deref());
            children.extend(&case.args);
            children.extend(case.defresult.as_deref());
        }
        NodeEnum::CaseWhen(when) => {
            children.extend(when.expr.as_deref());
            children.extend(when.result.as_deref());
        }
        NodeEnum::CoalesceExpr(coalesce) => children.extend(&coalesce.args),
        NodeEnum::MinMaxExpr(min_max) => children.extend(&min_max.args),
        NodeEnum::RowExpr(row) => children.extend(&row.args),
        NodeEnum::AArrayExpr(array) => children.extend(&array.elements),
        NodeEnum::List(list) => children.extend(&list.items),
        NodeEnum::AIndirection(indirection) => {
            children.extend(indirection.arg.as_deref());
            children.extend(&indirection.indirection);
        }
        NodeEnum::AIndices(indices) => {
            children.extend(indices.lidx.as_deref());
            children.extend(indices.uidx.as_deref());
        }
        NodeEnum::SortBy(sort) => children.extend(sort.node.as_deref()),
        NodeEnum::WindowDef(window) => {
            children.extend(&window.partition_clause);
            children.extend(&window.order_clause);
            children.extend(window.start_offset.as_deref());
            children.extend(window.end_offset.as_deref());
        }
        NodeEnum::GroupingSet(set) => children.extend(&set.content),
        _ => return None,
    }
    Some(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(sql: &str) -> TableUse {
        let mut uses = analyse(sql).unwrap();
        assert_eq!(uses.len(), 1, "{uses:?}");
        uses.remove(0)
    }

    #[test]
    fn s1_equality_sort_and_limit() {
        let posts =
            only("SELECT * FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2");
        assert_eq!(posts.table, "posts");
        assert_eq!(posts.equality, ["user_id"]);
        assert_eq!(posts.order_by, [("created_at".to_owned(), true)]);
        assert!(posts.limit);
    }

    #[test]
    fn in_lists_ranges_and_between() {
        let t = only(
            "SELECT id FROM public.orders o WHERE o.status IN ($1, $2) AND o.created_at >= $3 \
             AND amount BETWEEN $4 AND $5",
        );
        assert_eq!(t.schema, "public");
        assert_eq!(t.equality, ["status"]);
        assert_eq!(t.range, ["created_at", "amount"]);
        assert!(!t.limit);
    }

    #[test]
    fn joins_assign_columns_to_their_own_tables() {
        let uses = analyse(
            "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE c.email = $1 ORDER BY o.created_at",
        )
        .unwrap();
        let orders = uses.iter().find(|u| u.table == "orders").unwrap();
        let customers = uses.iter().find(|u| u.table == "customers").unwrap();
        assert_eq!(orders.join, ["customer_id"]);
        assert_eq!(customers.join, ["id"]);
        assert_eq!(customers.equality, ["email"]);
        assert_eq!(orders.order_by, [("created_at".to_owned(), false)]);
        assert!(customers.order_by.is_empty());
    }

    #[test]
    fn or_and_unqualified_columns_in_joins_are_left_alone() {
        let t = only("SELECT * FROM users WHERE email = $1 OR name = $2");
        assert!(t.equality.is_empty());
        let uses = analyse("SELECT * FROM a, b WHERE x = $1").unwrap();
        assert!(
            uses.iter().all(|u| u.equality.is_empty()),
            "ambiguous: {uses:?}"
        );
    }

    #[test]
    fn update_and_delete_filters_count() {
        assert_eq!(
            only("UPDATE accounts SET balance = $1 WHERE id = $2").equality,
            ["id"]
        );
        assert_eq!(
            only("DELETE FROM sessions WHERE expires_at < $1").range,
            ["expires_at"]
        );
    }

    #[test]
    fn quoted_identifiers_keep_their_spelling() {
        let t = only(r#"SELECT * FROM "Weird Table" WHERE "UserId" = $1"#);
        assert_eq!(t.table, "Weird Table");
        assert_eq!(t.equality, ["UserId"]);
    }

    #[test]
    fn an_insert_names_its_table_and_nothing_else() {
        let uses = analyse("INSERT INTO app.posts (user_id, title) VALUES ($1, $2)").unwrap();
        assert_eq!(
            uses,
            [TableUse {
                schema: "app".into(),
                table: "posts".into(),
                ..Default::default()
            }]
        );
    }

    #[test]
    fn a_range_against_now_minus_an_interval_counts() {
        let t = only("SELECT * FROM events WHERE created_at > now() - interval '1 day'");
        assert_eq!(t.range, ["created_at"]);
        let t =
            only("SELECT * FROM events WHERE created_at >= $1::timestamptz - interval '7 days'");
        assert_eq!(t.range, ["created_at"]);
    }

    #[test]
    fn equality_with_a_function_of_a_parameter_counts() {
        assert_eq!(
            only("SELECT * FROM users WHERE email = lower($1)").equality,
            ["email"]
        );
    }

    #[test]
    fn equality_with_current_date_counts() {
        assert_eq!(
            only("SELECT * FROM visits WHERE day = current_date").equality,
            ["day"]
        );
    }

    #[test]
    fn equality_with_an_operator_over_values_counts() {
        assert_eq!(
            only("SELECT * FROM tokens WHERE token = md5($1) || $2").equality,
            ["token"]
        );
    }

    #[test]
    fn equals_any_of_an_array_is_an_equality() {
        assert_eq!(
            only("SELECT * FROM users WHERE id = ANY($1)").equality,
            ["id"]
        );
        assert_eq!(
            only("SELECT * FROM users WHERE id = ANY(ARRAY[$1, $2])").equality,
            ["id"]
        );
    }

    #[test]
    fn a_value_equal_to_any_element_of_an_array_column_is_not_an_equality() {
        assert!(
            only("SELECT * FROM posts WHERE $1 = ANY(tags)")
                .equality
                .is_empty()
        );
    }

    #[test]
    fn between_expressions_of_values_is_a_range() {
        assert_eq!(
            only("SELECT * FROM orders WHERE created_at BETWEEN $1::date AND $1::date + 1").range,
            ["created_at"]
        );
    }

    #[test]
    fn a_value_on_the_left_works_like_the_mirrored_comparison() {
        assert_eq!(
            only("SELECT * FROM events WHERE now() - interval '1 day' < created_at").range,
            ["created_at"]
        );
    }

    #[test]
    fn a_volatile_function_is_not_a_value() {
        let t = only("SELECT * FROM items WHERE x = random() AND y = pg_catalog.RANDOM()");
        assert!(t.equality.is_empty(), "{t:?}");
    }

    #[test]
    fn a_sub_query_is_not_a_value() {
        let t = only("SELECT * FROM items WHERE x > (SELECT max(y) FROM t2)");
        assert!(t.range.is_empty(), "{t:?}");
    }

    #[test]
    fn an_expression_over_another_tables_column_is_neither_value_nor_join() {
        let uses = analyse("SELECT * FROM a JOIN b ON a.x = b.y + 1").unwrap();
        assert_eq!(uses.len(), 2);
        for u in &uses {
            assert!(u.equality.is_empty() && u.join.is_empty(), "{u:?}");
        }
    }

    #[test]
    fn not_in_is_not_an_equality() {
        assert!(
            only("SELECT * FROM users WHERE status NOT IN ($1, $2)")
                .equality
                .is_empty()
        );
    }

    #[test]
    fn an_unqualified_column_beside_a_function_in_from_is_not_attributed() {
        let uses =
            analyse("SELECT * FROM posts, generate_series(1, 3) AS g(n) WHERE n = $1").unwrap();
        assert!(uses[0].equality.is_empty(), "{uses:?}");
    }

    #[test]
    fn sorting_by_an_output_name_is_not_a_column_sort() {
        let t = only("SELECT created_at AS c FROM posts ORDER BY c DESC LIMIT 5");
        assert!(t.order_by.is_empty(), "{t:?}");
    }

    #[test]
    fn equality_on_a_function_of_a_column_is_an_expression_not_a_column() {
        let t = only("SELECT * FROM users WHERE lower(email) = $1");
        assert_eq!(t.equality_expressions, ["lower(email)"]);
        assert!(t.equality.is_empty());
    }

    #[test]
    fn an_expression_loses_its_table_qualifier() {
        let t = only("SELECT * FROM users u WHERE lower(u.email) = lower($1)");
        assert_eq!(t.equality_expressions, ["lower(email)"]);
    }

    #[test]
    fn an_expression_compared_with_another_column_is_not_recorded() {
        let t = only("SELECT * FROM users WHERE lower(email) = lower(name)");
        assert!(t.equality_expressions.is_empty(), "{t:?}");
        assert!(t.equality.is_empty(), "{t:?}");
    }

    #[test]
    fn expressions_keep_quoting_schema_and_constants_and_make_valid_index_definitions() {
        let t = only(
            r#"SELECT * FROM users WHERE $1 = upper("Email") AND pg_catalog.btrim(code) IN ($2, $3)
               AND coalesce(nick, 'x') = ANY($4) AND trim(users.handle) = $5"#,
        );
        assert_eq!(
            t.equality_expressions,
            [
                r#"upper("Email")"#,
                "pg_catalog.btrim(code)",
                "COALESCE(nick, 'x')",
                "TRIM (BOTH  FROM handle)"
            ]
        );
        for expression in &t.equality_expressions {
            let definition = format!("CREATE INDEX ON users (({expression}))");
            assert!(pg_query::parse(&definition, 0).is_ok(), "{definition}");
        }
    }

    #[test]
    fn only_known_immutable_functions_without_parameters_make_expressions() {
        for sql in [
            "SELECT * FROM events WHERE date(created_at) = $1",
            "SELECT * FROM events WHERE date_trunc('day', created_at) = $1",
            "SELECT * FROM events WHERE left(name, $1) = $2",
            "SELECT * FROM events WHERE created_at::date = $1",
            "SELECT * FROM events WHERE lower(name || kind) = $1",
            "SELECT * FROM events WHERE lower(name) > $1",
        ] {
            let t = only(sql);
            assert!(t.equality_expressions.is_empty(), "{sql}: {t:?}");
        }
    }

    #[test]
    fn read_columns_are_every_column_named_in_first_seen_order() {
        let posts = only(
            "SELECT id, title FROM posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10",
        );
        assert_eq!(
            posts.read_columns.as_deref(),
            Some(&["id", "title", "user_id", "created_at"].map(String::from)[..])
        );
        assert_eq!(
            only("SELECT DISTINCT ON (kind) kind, title FROM posts").read_columns,
            Some(vec!["kind".to_owned(), "title".to_owned()])
        );
        assert_eq!(
            only("SELECT DISTINCT title FROM posts").read_columns,
            Some(vec!["title".to_owned()])
        );
    }

    #[test]
    fn a_star_reads_the_whole_row() {
        assert_eq!(
            only("SELECT * FROM posts WHERE user_id = $1").read_columns,
            None
        );
        assert_eq!(only("SELECT p.* FROM posts p").read_columns, None);
        assert_eq!(
            only("SELECT row_to_json(p) FROM posts p").read_columns,
            None
        );
    }

    #[test]
    fn count_star_reads_only_the_filtered_columns() {
        assert_eq!(
            only("SELECT count(*) FROM posts WHERE user_id = $1").read_columns,
            Some(vec!["user_id".to_owned()])
        );
    }

    #[test]
    fn read_columns_follow_their_qualifiers_across_joins() {
        let uses = analyse(
            "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id \
             WHERE o.status = $1 GROUP BY o.id, c.name HAVING sum(o.total) > $2 \
             ORDER BY max(o.created_at)",
        )
        .unwrap();
        let read = |table: &str| {
            uses.iter()
                .find(|u| u.table == table)
                .and_then(|u| u.read_columns.clone())
        };
        assert_eq!(
            read("orders").unwrap(),
            ["id", "customer_id", "status", "total", "created_at"]
        );
        assert_eq!(read("customers").unwrap(), ["name", "id"]);
    }

    #[test]
    fn read_columns_are_unknown_when_a_column_cannot_be_attributed() {
        for sql in [
            "SELECT name FROM orders o JOIN customers c ON c.id = o.customer_id",
            "SELECT o.id FROM orders o JOIN customers c USING (customer_id)",
            "SELECT id FROM posts WHERE user_id IN (SELECT id FROM users WHERE banned)",
            "SELECT lower(title) AS t, count(*) FROM posts GROUP BY t",
        ] {
            for u in analyse(sql).unwrap() {
                assert_eq!(u.read_columns, None, "{sql}: {u:?}");
            }
        }
    }

    #[test]
    fn an_output_name_in_order_by_is_no_column() {
        assert_eq!(
            only("SELECT lower(title) AS t FROM posts ORDER BY t").read_columns,
            Some(vec!["title".to_owned()])
        );
    }

    #[test]
    fn only_a_select_has_read_columns() {
        assert_eq!(
            only("UPDATE accounts SET balance = $1 WHERE id = $2").read_columns,
            None
        );
        assert_eq!(
            only("DELETE FROM sessions WHERE id = $1").read_columns,
            None
        );
    }

    #[test]
    fn typed_literal_placeholders_become_casts_that_parse() {
        let normalised = "SELECT * FROM readings WHERE created_at > now() - interval $1 AND day >= DATE $2 \
             AND note = 'interval $3' /* interval $4 */";
        let fixed = parseable(normalised);
        assert_eq!(
            fixed,
            "SELECT * FROM readings WHERE created_at > now() - $1::interval AND day >= $2::date \
             AND note = 'interval $3' /* interval $4 */"
        );
        assert_eq!(only(&fixed).range, ["created_at", "day"]);
        assert_eq!(
            parseable("SELECT $1 FROM t WHERE at < timestamp with time zone $2"),
            "SELECT $1 FROM t WHERE at < $2::timestamp with time zone"
        );
        assert_eq!(parseable("SELECT my_interval $1"), "SELECT my_interval $1");
        // The advisor's own probe, remembered as the statement's text.
        assert_eq!(
            parseable("PREPARE sm_probe_3 AS SELECT * FROM t WHERE at > now() - interval $1"),
            "SELECT * FROM t WHERE at > now() - $1::interval"
        );
        assert_eq!(
            parseable("PREPARE mine AS SELECT 1"),
            "PREPARE mine AS SELECT 1"
        );
    }

    #[test]
    fn a_plain_filter_returns_its_matching_rows_and_aggregates_or_limits_do_not() {
        assert!(
            only("SELECT id, lower(title) FROM posts WHERE created_at > $1").returns_matching_rows
        );
        assert!(only("SELECT * FROM posts WHERE user_id = $1").returns_matching_rows);
        for sql in [
            "SELECT count(*) FROM posts WHERE created_at > $1",
            "SELECT user_id, max(id) FROM posts WHERE created_at > $1 GROUP BY user_id",
            "SELECT * FROM posts WHERE created_at > $1 LIMIT 10",
            "SELECT DISTINCT user_id FROM posts WHERE created_at > $1",
        ] {
            assert!(!only(sql).returns_matching_rows, "{sql}");
        }
        let joined = analyse("SELECT * FROM a JOIN b ON a.id = b.a_id WHERE a.x > $1").unwrap();
        assert!(joined.iter().all(|u| !u.returns_matching_rows));
    }

    #[test]
    fn several_statements_are_refused() {
        assert!(analyse("SELECT * FROM a WHERE x = $1; DROP TABLE a").is_err());
    }

    #[test]
    fn unparseable_text_is_an_error_not_a_panic() {
        assert!(analyse("SELEC nonsense FROM").is_err());
    }

    #[test]
    fn an_equality_with_a_written_constant_is_recorded_for_a_partial_index() {
        let t = only(
            "SELECT id FROM orders WHERE status = 'pending' AND customer_id = $1 \
             AND 7 = priority AND archived = false AND kind = 'a'::text AND at > 'x'",
        );
        assert_eq!(
            t.equality_constants,
            [
                ("status".to_owned(), SqlConstant::Text("pending".into())),
                ("priority".to_owned(), SqlConstant::Integer(7)),
                ("archived".to_owned(), SqlConstant::Boolean(false)),
                ("kind".to_owned(), SqlConstant::Text("a".into())),
            ]
        );
        assert_eq!(
            t.equality,
            ["status", "customer_id", "priority", "archived", "kind"]
        );
        assert!(
            only("SELECT * FROM t WHERE a IN ('x', 'y')")
                .equality_constants
                .is_empty()
        );
        assert!(
            only("SELECT * FROM t WHERE a = lower('X')")
                .equality_constants
                .is_empty()
        );
    }

    #[test]
    fn fixed_parameters_are_put_back_as_literals_and_nothing_else_changes() {
        let normalised =
            "SELECT a FROM t WHERE s = $1 AND c = $2 AND note = '$1' ORDER BY a LIMIT $3";
        let constants = [
            (1, SqlConstant::Text("it's".into())),
            (3, SqlConstant::Integer(50)),
        ];
        assert_eq!(
            with_constants(normalised, &constants).unwrap(),
            "SELECT a FROM t WHERE s = 'it''s' AND c = $2 AND note = '$1' ORDER BY a LIMIT 50"
        );
        assert_eq!(
            with_constants(
                "SELECT now() - interval $1",
                &[(1, SqlConstant::Text("1 minute".into()))]
            )
            .unwrap(),
            "SELECT now() - interval '1 minute'"
        );
        assert_eq!(with_constants(normalised, &[]).unwrap(), normalised);
    }
}
