param location string
