"""Realistic, seeded event generators (gaming, iot, web) and the Kafka producer that sends them."""
