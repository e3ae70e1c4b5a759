"""What probes emit: redaction of secret-named values, rendering of values as text,
bounded snapshots, and the DogStatsD client."""
