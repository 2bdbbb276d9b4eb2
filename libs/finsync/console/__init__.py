"""The ops console: a server-rendered web app for SREs and finance ops (`finsync console`)."""
