"""Transports that serve the services: REST, Socket.IO and Primus."""
