# A volume is imported by its name.
terraform import pouch_volume.data db-data
