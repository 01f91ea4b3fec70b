// The gateway's JSON, as the dashboard reads it: the types generated from the gateway's OpenAPI
// document (lib/openapi.json, a copy a gateway test keeps equal to what its Rust types make), so
// a field renamed in the gateway fails the type check here.
import type { components } from "./openapi";

type Schemas = components["schemas"];

export type Detection = Schemas["Detection"];
export type Action = Schemas["Action"];
export type LedgerEntry = Schemas["LedgerEntry"];
export type Database = Schemas["Database"];
export type SystemConfig = Schemas["SystemConfig"];
export type Thresholds = NonNullable<SystemConfig["thresholds"]>;
export type Status = Schemas["Status"];
export type ConnectionReport = Schemas["ConnectionReport"];
export type DoctorReport = Schemas["DoctorReport"];
export type DoctorCheck = Schemas["DoctorCheck"];
export type TablesReport = Schemas["TablesReport"];
export type TableStats = Schemas["TableStats"];
export type TableIndex = Schemas["TableIndex"];
export type IndexRecommendation = Schemas["IndexRecommendation"];
/** One snapshot of the collector's `metrics` event; read its numbers with `numberAt`. */
export type Metrics = Schemas["JsonObject"];
export type QueriesReport = Schemas["QueriesReport"];
export type StatementReport = Schemas["StatementReport"];
