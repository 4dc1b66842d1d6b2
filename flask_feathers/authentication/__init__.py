"""Authentication with Feathers 5's wire behaviour, so ``@feathersjs/client`` signs in unchanged.

::

    from flask_feathers.authentication import (AuthenticationService, JWTStrategy, LocalStrategy,
                                               authenticate, hash_password)

    auth = AuthenticationService(api)
    auth.register('jwt', JWTStrategy())
    auth.register('local', LocalStrategy())
    api.use('authentication', auth)

Needs the ``auth`` extra (PyJWT and bcrypt). See docs/authentication.rst.
"""
from .service import AuthenticationService
from .strategy import AuthenticationBaseStrategy
from .hooks import authenticate
from .jwt import JWTStrategy
from .local import LocalStrategy, hash_password

__all__ = ['AuthenticationService', 'AuthenticationBaseStrategy', 'JWTStrategy', 'LocalStrategy',
           'authenticate', 'hash_password']
