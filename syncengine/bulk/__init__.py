"""`migrate` through Zoho's Bulk Write API: a phase before the records pass.

`choice` prices a group both ways and picks the API; `eligibility` says
which changes of the feed a CSV may carry; `census` counts the feed's keys
and groups; `jobs_journal` keeps each job and its rows durable between its
steps; `outcomes` turns a job's answers into journal rows; `phase` runs it
all (`run_bulk_phase`) and `hosts` finds the upload host of a data centre.
"""
