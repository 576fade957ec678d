"""A pass split over worker processes by partitions of the record key.

`partition` says which partition a record is in and yields one partition of
a feed; `shared_read` serves the partitions a worker starts together from
one read; `leases` hands partitions to workers through PostgreSQL row
locks; `worker` is the loop of one `syncengine worker` process; `launcher`
starts `migrate --workers N` of them on this machine.
"""
