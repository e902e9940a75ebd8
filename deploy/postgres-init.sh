#!/bin/sh
# compose.yaml's PostgreSQL, on its first start (docker-entrypoint-initdb.d): the
# mlflow role, a login and nothing more (no superuser, no CREATEROLE, no CREATEDB),
# owning the two databases MLflow uses (runs and registry; users and permissions),
# which no other role may connect to. Its password is the mlflow_db_password secret.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v password="$(cat /run/secrets/mlflow_db_password)" <<'SQL'
CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
SQL
