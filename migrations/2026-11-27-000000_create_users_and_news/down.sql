DROP TABLE news;
DROP TABLE user_credentials;
DROP TABLE users;
