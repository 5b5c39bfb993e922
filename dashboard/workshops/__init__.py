"""Workshop rooms in the database: rooms and roles, questions and votes, forms and rate limits."""
