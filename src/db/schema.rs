// @generated automatically by Diesel CLI.

diesel::table! {
    news (id) {
        id -> Uuid,
        title -> Text,
        body -> Text,
        date_created -> Timestamptz,
        date_updated -> Timestamptz,
        author_id -> Uuid,
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
    }
}

diesel::joinable!(news -> users (author_id));
diesel::joinable!(user_credentials -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(news, user_credentials, users,);
