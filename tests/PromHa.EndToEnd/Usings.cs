global using Xunit;
global using PromHa.Lab;
