local x = 

  error('at load')
return {}