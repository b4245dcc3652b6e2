# An image already on the host is imported by its reference; destroying
# the imported resource leaves the image on the host.
terraform import pouch_image.app registry.example.internal:5000/team/app:stable
