//! Key-relevant DDL in the audit chain: each statement below becomes a
//! `pq.key_events` row (so an entry of the hash chain) with who, what and
//! when, never a secret value.
//!
//! Two mechanisms, because neither sees everything:
//!
//! - **Event triggers** (`pq_audit_sql_drop` on sql_drop,
//!   `pq_audit_ddl_end` on ddl_command_end, made by the extension script):
//!   DROP of a tracked table or of a column a tracking names (the
//!   tracking is removed, so nothing is left pointing at a dropped
//!   column), DROP of the extension's row triggers, ALTER TABLE of a
//!   tracked table that changes a column's type, the owner, triggers,
//!   partitions, logging, the name or the schema (the hook tells which; a
//!   RENAME of a column a tracking names is refused), and ALTER EXTENSION
//!   apg_pqcrypto. They fire in every backend, preloaded
//!   or not, and in the statement's transaction.
//! - **A ProcessUtility hook**, for what event triggers cannot see
//!   (PostgreSQL fires none for roles, databases and ALTER SYSTEM):
//!   GRANT/REVOKE of privileges on the extension's functions, and DROP
//!   OWNED, which revokes a role's (compared before and after: exactly the
//!   functions whose ACL changed), GRANT/
//!   REVOKE of pq_admin, pq_user or a role that holds tenant grants, and
//!   ALTER SYSTEM / ALTER DATABASE … SET / ALTER ROLE … SET of an
//!   `apg_pqcrypto.*` setting (and RESET ALL). It is installed when the
//!   library loads: with `shared_preload_libraries`, in every backend.
//!   Settings of the master key providers are recorded without their value.
//!
//! Statements in a database without the extension (0.10.0 or later), and
//! the extension's own scripts, are not recorded; on a hot standby nothing
//! is written (ALTER SYSTEM
//! there is logged to the server log instead).
use crate::{
    journal::events,
    platform::{catalog, errors::{OrRaise, PqResult}},
};
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::ffi::CStr;

/// What a utility statement is, for this module.
enum Watched {
    /// GRANT/REVOKE on functions or routines, or DROP OWNED (which revokes
    /// a role's privileges): the command and the extension's ACLs before.
    FunctionGrant { command: &'static str, before: Vec<(String, String)> },
    RoleGrant { grant: bool, roles: Vec<String>, grantees: Vec<String>, admin_option: bool },
    Setting { scope: String, setting: Option<String>, action: &'static str, value: Option<String> },
}

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;

thread_local! {
    /// True once the hook is installed in this backend.
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

/// True once the hook is installed in this backend.
pub(crate) fn hooked() -> bool {
    HOOKED.get()
}

/// Installs the ProcessUtility hook; from `_PG_init`.
pub fn install_hook() {
    // SAFETY: _PG_init runs once per process, before any statement.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
    HOOKED.set(true);
}

/// The key-relevant parts of an ALTER TABLE-like statement: what can let
/// plaintext or another owner in, or switch the extension's triggers off.
///
/// # Safety
/// `node` is a utility statement's parse tree.
#[allow(non_upper_case_globals)]
unsafe fn alter_table_parts(node: *mut pg_sys::Node) -> Option<Vec<&'static str>> {
    use pg_sys::AlterTableType::*;
    // SAFETY: each cast follows the node's tag.
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_AlterTableStmt) {
            let cmds = pgrx::PgList::<pg_sys::AlterTableCmd>::from_pg((*(node as *mut pg_sys::AlterTableStmt)).cmds);
            let parts = cmds
                .iter_ptr()
                .filter_map(|c| match (*c).subtype {
                    AT_AlterColumnType => Some("ALTER COLUMN TYPE"),
                    AT_ChangeOwner => Some("OWNER TO"),
                    AT_EnableTrig | AT_EnableAlwaysTrig | AT_EnableReplicaTrig | AT_EnableTrigAll | AT_EnableTrigUser => {
                        Some("ENABLE TRIGGER")
                    }
                    AT_DisableTrig | AT_DisableTrigAll | AT_DisableTrigUser => Some("DISABLE TRIGGER"),
                    AT_AttachPartition => Some("ATTACH PARTITION"),
                    AT_DetachPartition | AT_DetachPartitionFinalize => Some("DETACH PARTITION"),
                    AT_SetLogged | AT_SetUnLogged => Some("SET LOGGED/UNLOGGED"),
                    _ => None,
                })
                .collect();
            return Some(parts);
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_RenameStmt) {
            return Some(match (*(node as *mut pg_sys::RenameStmt)).renameType {
                pg_sys::ObjectType::OBJECT_TABLE => vec!["RENAME"],
                pg_sys::ObjectType::OBJECT_COLUMN => vec!["RENAME COLUMN"],
                _ => vec![],
            });
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_AlterObjectSchemaStmt) {
            return Some(vec!["SET SCHEMA"]);
        }
        None
    }
}

/// What the hook saw of each utility statement running in this backend,
/// innermost last: the statement to record after it ran, and for an ALTER
/// TABLE what of it is key-relevant.
type Seen = (Option<Watched>, Option<Vec<&'static str>>);

thread_local! {
    static RUNNING: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
}

extern "C-unwind" {
    /// PostgreSQL's own, called without pgrx's guard (see `process_utility`).
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
}

/// The hook. It runs the statement with no Rust value alive in its frame
/// and without pgrx's guard, so that an ERROR of the statement reaches the
/// client exactly as PostgreSQL raised it (pgrx's guard would re-raise it
/// without its CONTEXT, position and object names): what must be kept
/// across the call waits in `RUNNING`, and `before` and `after` are guarded
/// functions of their own.
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: pstmt is the statement PostgreSQL is about to run; the rest
    // are the arguments PostgreSQL gave, passed on unchanged.
    unsafe {
        let depth = before(pstmt, context);
        match PREVIOUS {
            Some(previous) => previous(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc),
            None => raw_standard_process_utility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc),
        }
        after(depth);
    }
}

/// Notes what the statement is; returns where its entry is in `RUNNING`.
#[pg_guard]
unsafe extern "C-unwind" fn before(pstmt: *mut pg_sys::PlannedStmt, context: pg_sys::ProcessUtilityContext::Type) -> usize {
    // A statement from the client: nothing else runs in this backend, so
    // whatever an earlier statement's ERROR left behind goes.
    if context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL {
        RUNNING.with_borrow_mut(Vec::clear);
    }
    // SAFETY: pstmt is the statement PostgreSQL is about to run.
    let node = unsafe { (*pstmt).utilityStmt };
    // SAFETY: node is the statement's parse tree (or NULL).
    let watched = unsafe { watch(node) }.or_raise();
    // SAFETY: node is the statement's parse tree (or NULL).
    let parts = if node.is_null() { None } else { unsafe { alter_table_parts(node) } };
    RUNNING.with_borrow_mut(|r| {
        r.push((watched, parts));
        r.len() - 1
    })
}

/// Records the statement that ran (if it is one this module records). An
/// entry above `depth` is an inner statement's whose ERROR was caught.
#[pg_guard]
unsafe extern "C-unwind" fn after(depth: usize) {
    let mine = RUNNING.with_borrow_mut(|r| if depth < r.len() { r.drain(depth..).next() } else { None });
    if let Some((Some(w), _)) = mine {
        record(w).or_raise();
    }
}

/// The key-relevant parts of the innermost ALTER TABLE running, if the
/// hook saw one.
pub(crate) fn running_alter_table() -> Option<Vec<&'static str>> {
    RUNNING.with_borrow(|r| r.last().and_then(|(_, parts)| parts.clone()))
}

fn c_str(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: a NUL-terminated string of the parse tree, or NULL.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// True where this module records: a database with the 0.10.0 objects,
/// outside the extension's own scripts (CREATE and ALTER EXTENSION run its
/// GRANTs and DDL; the ALTER EXTENSION itself is recorded when it ends) and
/// outside pg_upgrade's schema restore (the old cluster's tables replace
/// whatever it would write).
pub(crate) fn recording_here() -> bool {
    // SAFETY: backend globals, read on the backend's thread.
    let (in_transaction, in_script, upgrading) =
        unsafe { (pg_sys::IsTransactionState(), pg_sys::creating_extension, pg_sys::IsBinaryUpgrade) };
    in_transaction && !in_script && !upgrading && catalog::has_0_10_objects()
}

/// What `node` is, and for a GRANT on functions the ACLs before it runs.
///
/// # Safety
/// `node` is a utility statement's parse tree.
unsafe fn watch(node: *mut pg_sys::Node) -> PqResult<Option<Watched>> {
    if node.is_null() {
        return Ok(None);
    }
    use pg_sys::NodeTag::*;
    // SAFETY: node is a parse tree node; each cast below follows its tag.
    let tag = unsafe { (*node).type_ };
    let watched_tags = [T_GrantStmt, T_GrantRoleStmt, T_DropOwnedStmt, T_AlterSystemStmt, T_AlterDatabaseSetStmt, T_AlterRoleSetStmt];
    if !watched_tags.contains(&tag) || !recording_here() {
        return Ok(None);
    }
    // SAFETY: each cast below follows the node's tag.
    unsafe {
        if pgrx::is_a(node, pg_sys::NodeTag::T_GrantStmt) {
            let g = &*(node as *mut pg_sys::GrantStmt);
            let routines = [pg_sys::ObjectType::OBJECT_FUNCTION, pg_sys::ObjectType::OBJECT_ROUTINE, pg_sys::ObjectType::OBJECT_PROCEDURE];
            if !routines.contains(&g.objtype) {
                return Ok(None);
            }
            let command = if g.is_grant { "GRANT" } else { "REVOKE" };
            return Ok(Some(Watched::FunctionGrant { command, before: function_acls()? }));
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_DropOwnedStmt) {
            return Ok(Some(Watched::FunctionGrant { command: "DROP OWNED", before: function_acls()? }));
        }
        if pgrx::is_a(node, pg_sys::NodeTag::T_GrantRoleStmt) {
            let g = &*(node as *mut pg_sys::GrantRoleStmt);
            let roles = pgrx::PgList::<pg_sys::AccessPriv>::from_pg(g.granted_roles)
                .iter_ptr()
                .filter_map(|p| c_str((*p).priv_name))
                .collect();
            let grantees = pgrx::PgList::<pg_sys::RoleSpec>::from_pg(g.grantee_roles).iter_ptr().filter_map(|r| role_spec(r)).collect();
            return Ok(Some(Watched::RoleGrant { grant: g.is_grant, roles, grantees, admin_option: g.admin_opt }));
        }
        let (scope, set) = if pgrx::is_a(node, pg_sys::NodeTag::T_AlterSystemStmt) {
            ("system".to_owned(), (*(node as *mut pg_sys::AlterSystemStmt)).setstmt)
        } else if pgrx::is_a(node, pg_sys::NodeTag::T_AlterDatabaseSetStmt) {
            let s = &*(node as *mut pg_sys::AlterDatabaseSetStmt);
            (format!("database {}", c_str(s.dbname).unwrap_or_default()), s.setstmt)
        } else if pgrx::is_a(node, pg_sys::NodeTag::T_AlterRoleSetStmt) {
            let s = &*(node as *mut pg_sys::AlterRoleSetStmt);
            let role = if s.role.is_null() { "all roles".to_owned() } else { format!("role {}", role_spec(s.role).unwrap_or_default()) };
            match c_str(s.database) {
                Some(db) => (format!("{role} in database {db}"), s.setstmt),
                None => (role, s.setstmt),
            }
        } else {
            return Ok(None);
        };
        if set.is_null() {
            return Ok(None);
        }
        let set = &mut *set;
        let setting = c_str(set.name);
        let action = match set.kind {
            pg_sys::VariableSetKind::VAR_RESET_ALL => "reset all",
            pg_sys::VariableSetKind::VAR_RESET | pg_sys::VariableSetKind::VAR_SET_DEFAULT => "reset",
            _ => "set",
        };
        match &setting {
            Some(name) if name.to_ascii_lowercase().starts_with("apg_pqcrypto.") => {}
            None if action == "reset all" => {}
            _ => return Ok(None),
        }
        let value = match (&setting, action) {
            (Some(name), "set") if !withheld(name) => c_str(pg_sys::ExtractSetVariableArgs(set)),
            _ => None,
        };
        Ok(Some(Watched::Setting { scope, setting, action, value }))
    }
}

/// Settings that locate master key material: recorded without their value.
fn withheld(setting: &str) -> bool {
    let s = setting.to_ascii_lowercase();
    ["apg_pqcrypto.master_key_", "apg_pqcrypto.pkcs11_", "apg_pqcrypto.kms_"].iter().any(|p| s.starts_with(p))
}

/// A role of a statement by name (CURRENT_USER and the like resolved);
/// None for PUBLIC.
///
/// # Safety
/// `r` is a RoleSpec of the parse tree.
unsafe fn role_spec(r: *mut pg_sys::RoleSpec) -> Option<String> {
    // SAFETY: as the caller promises.
    unsafe {
        if r.is_null() || (*r).roletype == pg_sys::RoleSpecType::ROLESPEC_PUBLIC {
            return None;
        }
        if (*r).roletype == pg_sys::RoleSpecType::ROLESPEC_CSTRING {
            return c_str((*r).rolename);
        }
        c_str(pg_sys::get_rolespec_name(r))
    }
}

/// Every function of the extension with its ACL, as text.
fn function_acls() -> PqResult<Vec<(String, String)>> {
    catalog::as_owner(|| {
        catalog::rows(
            "SELECT p.oid::pg_catalog.regprocedure::text, coalesce(p.proacl::text, '')
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_depend d
                 ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e'
              WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'apg_pqcrypto')
              ORDER BY 1",
            &[],
            |r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())),
        )
    })
}

fn record(w: Watched) -> PqResult<()> {
    // SAFETY: a backend global, read on the backend's thread.
    let read_only = unsafe { pg_sys::XactReadOnly };
    if catalog::in_recovery() || read_only {
        // Only ALTER SYSTEM gets here (the rest is refused read-only): its
        // file is written already; say so in the server log.
        if let Watched::Setting { scope, setting, action, .. } = &w {
            let where_ = if read_only && !catalog::in_recovery() { "in a read-only transaction" } else { "on a standby" };
            log!("apg_pqcrypto: {action} of {} for {scope} {where_}: not in the audit chain", setting.as_deref().unwrap_or("every setting"));
        }
        return Ok(());
    }
    let actor = events::session_user();
    let (event, details) = match w {
        Watched::FunctionGrant { command, before } => {
            let after = function_acls()?;
            let changed: Vec<Value> = after
                .iter()
                .filter_map(|(f, acl)| {
                    let old = before.iter().find(|(g, _)| g == f).map(|(_, a)| a.as_str()).unwrap_or("");
                    (old != acl).then(|| json!({ "function": f, "acl_before": old, "acl_after": acl }))
                })
                .collect();
            if changed.is_empty() {
                return Ok(());
            }
            ("function_privileges_changed", json!({ "command": command, "functions": changed }))
        }
        Watched::RoleGrant { grant, roles, grantees, admin_option } => {
            let relevant = catalog::as_owner(|| {
                catalog::one::<bool>(
                    "SELECT bool_or(r = ANY (ARRAY['pq_admin', 'pq_user'])
                                    OR EXISTS (SELECT 1 FROM pq.tenant_grants g WHERE g.role_name = r))
                       FROM pg_catalog.unnest($1::text[]) AS r",
                    &[roles.clone().into()],
                )
            })?
            .unwrap_or(false);
            if !relevant {
                return Ok(());
            }
            let event = if grant { "role_membership_granted" } else { "role_membership_revoked" };
            (event, json!({ "roles": roles, "members": grantees, "admin_option": admin_option }))
        }
        Watched::Setting { scope, setting, action, value } => {
            let withheld = setting.as_deref().is_some_and(withheld) && action == "set";
            let mut d = json!({ "scope": scope, "setting": setting, "action": action, "value": value });
            if withheld {
                d["value_withheld"] = json!(true);
            }
            ("setting_changed", d)
        }
    };
    catalog::as_owner(|| events::record(event, None, None, &actor, None, details))
}
