"""Users as the API shows them."""

from datetime import datetime

from pydantic import BaseModel

from callcenter.users.models import UserRole


class UserRead(BaseModel):
    id: int
    username: str
    display_name: str
    employee_number: str | None
    role: UserRole
    is_active: bool
    created_at: datetime
