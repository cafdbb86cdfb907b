// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector", schema = "pg_catalog"))]
    pub struct Tsvector;
}

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        new_email -> Nullable<Text>,
        new_email_canonical -> Nullable<Text>,
        email_canonical -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    hash_slots (holder) {
        holder -> Uuid,
        client -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Uuid,
        key -> Text,
        request_hash -> Bytea,
        created_at -> Timestamptz,
        response_status -> Nullable<Int2>,
        response_body -> Nullable<Bytea>,
        response_location -> Nullable<Text>,
        response_etag -> Nullable<Text>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Uuid,
        recipient -> Text,
        subject -> Text,
        body -> Nullable<Text>,
        created_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Tsvector;

    news (id) {
        id -> Uuid,
        title -> Text,
        body -> Text,
        date_created -> Timestamptz,
        date_updated -> Timestamptz,
        author_id -> Uuid,
        version -> Int8,
        search -> Tsvector,
    }
}

diesel::table! {
    refresh_families (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        family_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    signin_failures (key) {
        key -> Text,
        window_started_at -> Timestamptz,
        failures -> Int4,
    }
}

diesel::table! {
    user_credentials (user_id) {
        user_id -> Uuid,
        password_hash -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        name -> Nullable<Text>,
        role -> Text,
        created_at -> Timestamptz,
        email_canonical -> Nullable<Text>,
        email_verified_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(idempotency_keys -> users (user_id));
diesel::joinable!(news -> users (author_id));
diesel::joinable!(refresh_families -> users (user_id));
diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::joinable!(user_credentials -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_tokens,
    hash_slots,
    idempotency_keys,
    mail_outbox,
    news,
    refresh_families,
    refresh_tokens,
    signin_failures,
    user_credentials,
    users,
);
