//! What one statement asks of each table it reads: parsed with PostgreSQL's parser from the
//! normalised text pg_stat_statements keeps (`$1` for constants). Handles SELECT (with joins),
//! UPDATE and DELETE, and INSERT as a bare table use; conditions under OR or NOT are left alone
//! (no single index serves them).

use pg_query::NodeEnum;
use pg_query::protobuf::{AExprKind, BoolExprType, Node, SortByDir};

/// How a statement uses one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableUse {
    /// Empty when the statement does not name the schema.
    pub schema: String,
    pub table: String,
    /// Columns compared with `=` or `IN` to a value, in the order they appear.
    pub equality: Vec<String>,
    /// Columns compared with `<`, `>`, `<=`, `>=` or `BETWEEN`.
    pub range: Vec<String>,
    /// Columns compared with another table's column.
    pub join: Vec<String>,
    /// `ORDER BY` columns of this table with `true` for DESC, when every sort key is one of them.
    pub order_by: Vec<(String, bool)>,
    pub limit: bool,
}

impl TableUse {
    fn add(list: &mut Vec<String>, column: &str) {
        if !list.iter().any(|c| c == column) {
            list.push(column.to_owned());
        }
    }
}

/// The tables a statement reads and how; an error when the text does not parse or holds more
/// than one statement (pg_stat_statements keeps one per entry; anything else is not probed).
pub fn analyse(sql: &str) -> Result<Vec<TableUse>, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| e.to_string())?;
    if parsed.protobuf.stmts.len() != 1 {
        return Err("not exactly one statement".into());
    }
    let mut uses = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::SelectStmt(select) => {
                let mut tables = Vec::new();
                for from in &select.from_clause {
                    collect_tables(from, &mut tables);
                }
                let mut scope = Scope::new(tables);
                if let Some(condition) = &select.where_clause {
                    scope.condition(condition);
                }
                for from in &select.from_clause {
                    scope.join_conditions(from);
                }
                scope.order_by(&select.sort_clause);
                if select.limit_count.is_some() {
                    for t in &mut scope.uses {
                        t.limit = true;
                    }
                }
                uses.extend(scope.uses);
            }
            NodeEnum::UpdateStmt(update) => {
                if let Some(relation) = &update.relation {
                    let mut scope = Scope::new(vec![table_of(relation)]);
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
                    let mut scope = Scope::new(vec![table_of(relation)]);
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

fn collect_tables(node: &Node, out: &mut Vec<Named>) {
    match node.node.as_ref() {
        Some(NodeEnum::RangeVar(relation)) => out.push(table_of(relation)),
        Some(NodeEnum::JoinExpr(join)) => {
            for side in [&join.larg, &join.rarg].into_iter().flatten() {
                collect_tables(side, out);
            }
        }
        _ => {}
    }
}

struct Scope {
    names: Vec<String>,
    uses: Vec<TableUse>,
}

/// One side of a comparison.
enum Operand {
    Column(usize, String),
    Value,
    Other,
}

impl Scope {
    fn new(tables: Vec<Named>) -> Self {
        let (names, uses) = tables.into_iter().map(|n| (n.alias, n.use_)).unzip();
        Self { names, uses }
    }

    /// The table a column reference belongs to: by its qualifier, or the only table in scope.
    fn resolve(&self, node: &Node) -> Operand {
        match node.node.as_ref() {
            Some(NodeEnum::ColumnRef(column)) => {
                let parts: Vec<&str> = column
                    .fields
                    .iter()
                    .filter_map(|f| match f.node.as_ref() {
                        Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                        _ => None,
                    })
                    .collect();
                match parts.as_slice() {
                    [name] if self.uses.len() == 1 => Operand::Column(0, (*name).to_owned()),
                    [qualifier, name] => self
                        .names
                        .iter()
                        .position(|n| n == qualifier)
                        .map_or(Operand::Other, |i| Operand::Column(i, (*name).to_owned())),
                    _ => Operand::Other,
                }
            }
            Some(NodeEnum::ParamRef(_) | NodeEnum::AConst(_)) => Operand::Value,
            Some(NodeEnum::TypeCast(cast)) => {
                cast.arg
                    .as_ref()
                    .map_or(Operand::Other, |arg| match self.resolve(arg) {
                        Operand::Value => Operand::Value,
                        _ => Operand::Other,
                    })
            }
            Some(NodeEnum::List(list)) if !list.items.is_empty() => {
                if list
                    .items
                    .iter()
                    .all(|i| matches!(self.resolve(i), Operand::Value))
                {
                    Operand::Value
                } else {
                    Operand::Other
                }
            }
            _ => Operand::Other,
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
            Some(NodeEnum::AExpr(expr)) => {
                let operator = expr.name.iter().find_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                    _ => None,
                });
                let (Some(left), Some(right)) = (&expr.lexpr, &expr.rexpr) else {
                    return;
                };
                let (left, right) = (self.resolve(left), self.resolve(right));
                let kind = expr.kind;
                let is = |k: AExprKind| kind == k as i32;
                match (left, right) {
                    (Operand::Column(a, ca), Operand::Column(b, cb))
                        if a != b && operator == Some("=") =>
                    {
                        TableUse::add(&mut self.uses[a].join, &ca);
                        TableUse::add(&mut self.uses[b].join, &cb);
                    }
                    (Operand::Column(t, c), Operand::Value)
                    | (Operand::Value, Operand::Column(t, c)) => {
                        if is(AExprKind::AexprIn)
                            || (is(AExprKind::AexprOp) && operator == Some("="))
                        {
                            TableUse::add(&mut self.uses[t].equality, &c);
                        } else if is(AExprKind::AexprBetween)
                            || (is(AExprKind::AexprOp)
                                && matches!(operator, Some("<" | ">" | "<=" | ">=")))
                        {
                            TableUse::add(&mut self.uses[t].range, &c);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
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

    /// Records the sort on a table when every sort key is a plain column of that one table.
    fn order_by(&mut self, sort_clause: &[Node]) {
        let mut keys = Vec::new();
        for item in sort_clause {
            let Some(NodeEnum::SortBy(sort)) = item.node.as_ref() else {
                return;
            };
            let Some(Operand::Column(table, column)) = sort.node.as_ref().map(|n| self.resolve(n))
            else {
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
    fn several_statements_are_refused() {
        assert!(analyse("SELECT * FROM a WHERE x = $1; DROP TABLE a").is_err());
    }

    #[test]
    fn unparseable_text_is_an_error_not_a_panic() {
        assert!(analyse("SELEC nonsense FROM").is_err());
    }
}
