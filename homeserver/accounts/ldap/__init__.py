"""LDAP / Active Directory sign-in: `directory` asks the directory, `sign_in`
decides which Matrix account a verified password opens (and creates it)."""
