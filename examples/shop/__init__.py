"""A tiny shop: the example service that the demo and docker-compose run as workers."""
