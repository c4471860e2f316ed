//! One page of a delivery log (push notifications, webhook deliveries): newest first by id (ids
//! are time-ordered), the filters that are set, and `before` an id for the next page.

/// The query text and the values to bind in order; the page size is bound last.
pub(crate) struct LogPage {
    pub(crate) sql: String,
    pub(crate) values: Vec<String>,
}

impl LogPage {
    /// `SELECT columns FROM table WHERE column = $n … AND id < $before ORDER BY id DESC LIMIT $last`
    /// for the `(column, value)` filters that have a value.
    pub(crate) fn newest_first(
        columns: &str,
        table: &str,
        filters: [(&str, Option<String>); 3],
        before: Option<&str>,
    ) -> Self {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let set = filters.into_iter().filter_map(|(c, v)| Some((c, v?)));
        for (column, value) in set.chain(before.map(|b| ("id <", b.to_owned()))) {
            values.push(value);
            // Filters compare for equality; `before` is given with its own operator.
            let op = if column.ends_with('<') { "" } else { " =" };
            conditions.push(format!("{column}{op} ${}", values.len()));
        }
        let mut sql = format!("SELECT {columns} FROM {table}");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", values.len() + 1));
        Self { sql, values }
    }
}

#[cfg(test)]
mod tests {
    use super::LogPage;

    #[test]
    fn only_the_filters_set_are_bound_in_order_and_the_limit_comes_last() {
        let page = LogPage::newest_first(
            "id, status",
            "log",
            [
                ("status", Some("failed".into())),
                ("user_id", None),
                ("consultation_id", Some("c1".into())),
            ],
            Some("0190"),
        );
        assert_eq!(
            page.sql,
            "SELECT id, status FROM log WHERE status = $1 AND consultation_id = $2 AND id < $3 \
             ORDER BY id DESC LIMIT $4"
        );
        assert_eq!(page.values, ["failed", "c1", "0190"]);
        let all = LogPage::newest_first("id", "log", [("a", None), ("b", None), ("c", None)], None);
        assert_eq!(all.sql, "SELECT id FROM log ORDER BY id DESC LIMIT $1");
    }
}
